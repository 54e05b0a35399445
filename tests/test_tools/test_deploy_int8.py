"""INT8 export (``pytorch2onnx.py --precision int8``) and its inference.

The tiny Polyp-PVT of ``test_deployment.py`` (batch-norm statistics of its
images) is exported once with ``--precision int8 --verify``; its training
set is a folder of 8 images of which ``split='train-minus-val'`` keeps 6
(2 listed in the split file, the validation set), its test set another
folder. Which images the calibration reads is recorded.
"""
import contextlib
import io
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from conftest import write_binary_dataset
from deploy_helpers import one_thread  # noqa: F401 (autouse fixture)
from deploy_helpers import (SIZE, calibrate_batch_norm, config_for, run_tool,
                            tiny_polyp_pvt)
from mmengine.config import Config

from mmseg_kdas.deployment import build_predictor
from mmseg_kdas.deployment import quantize as quantize_module
from mmseg_kdas.deployment.backends import OpenVINOPredictor
from mmseg_kdas.deployment.model import build_segmentor
from mmseg_kdas.deployment.pipeline import preprocess, read_image
from mmseg_kdas.deployment.quantize import (ImageCalibrationReader,
                                            calibration_images,
                                            probability_agreement,
                                            quantize_onnx, training_images)

CALIB_NUM = 4
VAL_STEMS = ['0', '5']


def train_set(root: str, split_file: str) -> dict:
    return dict(
        type='PolypDataset',
        data_root=root,
        data_prefix=dict(img_path='images', seg_map_path='masks'),
        split='train-minus-val',
        split_file=split_file,
        pipeline=[dict(type='LoadImageFromFile')])


@pytest.fixture(scope='module')
def int8(tmp_path_factory):
    """Config, float and INT8 files, the tool's log, calibration reads."""
    root = tmp_path_factory.mktemp('int8')
    train = write_binary_dataset(str(root / 'train'), num=8)
    split_file = str(root / 'val.txt')
    with open(split_file, 'w') as f:
        f.write('\n'.join(VAL_STEMS) + '\n')
    test = write_binary_dataset(str(root / 'test'), num=2)
    cfg = config_for(tiny_polyp_pvt(), test)
    cfg.train_dataloader = dict(dataset=train_set(train, split_file))
    # as pranet_polyp_val.py: the held-out split of the training folder
    cfg.val_dataloader = dict(
        dataset=dict(train_set(train, split_file), split='val'))
    config = str(root / 'tiny_polyp_pvt.py')
    cfg.dump(config)
    torch.manual_seed(0)
    model = build_segmentor(Config.fromfile(config))
    folder = osp.join(train, 'images')
    calibrate_batch_norm(
        model,
        np.stack([
            cv2.resize(read_image(osp.join(folder, n)), (SIZE, SIZE))
            for n in sorted(os.listdir(folder))
        ]))
    checkpoint = str(root / 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    onnx_path = str(root / 'tiny.onnx')
    reads = []

    def recording_read(path):
        reads.append(osp.abspath(path))
        return read_image(path)

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as m, contextlib.redirect_stdout(out):
        m.setattr(quantize_module, 'read_image', recording_read)
        status = run_tool(m, 'tools/deployment/pytorch2onnx.py', config,
                          checkpoint, '--out', onnx_path, '--precision',
                          'int8', '--calib-num', CALIB_NUM, '--verify',
                          '--threads', 1)
    return dict(
        config=config, checkpoint=checkpoint, onnx=onnx_path,
        int8=str(root / 'tiny.int8.onnx'), status=status,
        log=out.getvalue(), reads=reads, train=train, test=test,
        split_file=split_file, root=root)


def test_int8_export_has_qdq_nodes_and_its_spec(int8):
    import onnx
    assert int8['status'] == 0, int8['log']
    assert f'calibrated on {CALIB_NUM} training images' in int8['log']
    assert 'int8 agreement: 2 images: max |probability' in int8['log']
    ops = [n.op_type for n in onnx.load(int8['int8']).graph.node]
    assert ops.count('QuantizeLinear') > 0 and ops.count(
        'DequantizeLinear') > ops.count('QuantizeLinear')  # + the weights
    predictor = build_predictor(int8['int8'], threads=1)
    assert predictor.precision == 'int8'
    source = predictor.spec.source
    assert source['quantization']['calibration_images'] == CALIB_NUM
    assert source['float_model'] == osp.abspath(int8['onnx'])
    assert osp.isfile(int8['int8'][:-5] + '.json')  # the sidecar
    assert build_predictor(int8['onnx'], threads=1).precision == 'f32'


def test_calibration_reads_training_images_only(int8):
    folder = osp.join(int8['train'], 'images')
    allowed = [
        osp.join(folder, f'{i}.png') for i in range(8)
        if str(i) not in VAL_STEMS
    ]
    assert len(int8['reads']) == CALIB_NUM
    assert set(int8['reads']) <= set(allowed), int8['reads']
    # the seeded choice, as the tool made it
    assert int8['reads'] == calibration_images(allowed, CALIB_NUM)
    cfg = Config.fromfile(int8['config'])
    assert training_images(cfg) == allowed
    # the calibration input is the inference input
    spec = build_predictor(int8['onnx'], threads=1).spec
    batch = ImageCalibrationReader(allowed, spec).get_next()
    np.testing.assert_array_equal(batch['image'],
                                  preprocess([read_image(allowed[0])], spec))


def test_int8_agrees_with_float(int8):
    rng = np.random.default_rng(11)
    images = []
    for h, w in [(40, 40), (64, 64), (50, 70)]:
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        cv2.circle(image, (w // 2, h // 2), 9, (40, 40, 220), -1)
        images.append(image)
    reference = build_predictor(int8['onnx'], threads=1)
    result = probability_agreement(
        reference, build_predictor(int8['onnx'], threads=1,
                                   precision='int8'), reference.spec, images)
    # measured on this tiny random model (4 calibration images; AMD EPYC
    # with AVX512-VNNI, ONNX Runtime 1.32.0): largest probability change
    # 0.098, 2.2 % of the mask pixels flipped (noise images: many pixels
    # near 0.5). Bounds with 2x / 3x margin, for CPUs without VNNI, whose
    # integer kernels round differently
    assert result['max_abs_prob_diff'] <= 0.2, result
    assert result['mask_share_differ'] <= 0.06, result
    assert result['pixels'] == 40 * 40 + 64 * 64 + 50 * 70


def test_infer_int8_and_the_backends_without_it(int8, tmp_path,
                                                monkeypatch):
    image = str(tmp_path / 'frame.png')
    cv2.imwrite(image, read_image(osp.join(int8['test'], 'images', '0.png')))
    status = run_tool(monkeypatch, 'tools/infer.py', image, int8['onnx'],
                      '--precision', 'int8', '--out', tmp_path / 'out',
                      '--threads', 1, '--no-progress')
    assert status == 0
    with open(tmp_path / 'out' / 'summary.json') as f:
        assert '"precision": "int8"' in f.read()
    # OpenVINO runs the same INT8 file (its QDQ pairs as integer
    # kernels): close to ONNX Runtime's INT8 and to the float model
    openvino = build_predictor(int8['onnx'], backend='openvino',
                               precision='int8', threads=1)
    assert openvino.precision == 'int8'
    assert openvino.onnx_path == int8['int8']
    assert build_predictor(int8['int8'], backend='openvino',
                           threads=1).precision == 'int8'
    ort = build_predictor(int8['int8'], threads=1)
    images = [read_image(osp.join(int8['test'], 'images', f'{i}.png'))
              for i in range(2)]
    # measured: 0.20 and 9 % of the pixels against either (this random
    # model's probabilities crowd the threshold; trained students: docs)
    for reference in (ort, build_predictor(int8['onnx'], threads=1)):
        agreement = probability_agreement(reference, openvino, ort.spec,
                                          images)
        assert agreement['max_abs_prob_diff'] <= 0.4
        assert agreement['mask_share_differ'] <= 0.15
    with pytest.raises(ValueError, match='pytorch runs f32'):
        build_predictor(int8['config'], int8['checkpoint'], precision='int8')
    with pytest.raises(ValueError, match='INT8 model'):
        OpenVINOPredictor(int8['int8'], threads=1, precision='f32')
    with pytest.raises(ValueError, match='is a float model'):
        OpenVINOPredictor(int8['onnx'], threads=1, precision='int8')
    other = str(tmp_path / 'other.onnx')
    os.symlink(int8['onnx'], other)
    with pytest.raises(FileNotFoundError, match='--precision int8'):
        build_predictor(other, precision='int8')


def test_calibration_errors(int8, tmp_path, monkeypatch, capsys):
    # a split that leaves no training image: the folder and split named
    cfg = Config.fromfile(int8['config'])
    all_val = str(tmp_path / 'all_val.txt')
    with open(all_val, 'w') as f:
        f.write('\n'.join(map(str, range(8))) + '\n')
    cfg.train_dataloader.dataset.split_file = all_val
    config = str(tmp_path / 'no_train.py')
    cfg.dump(config)
    out = tmp_path / 'tiny.onnx'
    status = run_tool(monkeypatch, 'tools/deployment/pytorch2onnx.py',
                      config, int8['checkpoint'], '--out', out,
                      '--precision', 'int8')
    err = capsys.readouterr().err
    assert status != 0
    folder = osp.join(int8['train'], 'images')
    assert f"no training images in {folder} (split 'train-minus-val')" \
        in err, err
    assert not osp.exists(out)  # checked before exporting
    # an empty folder: named
    os.makedirs(tmp_path / 'empty' / 'images')
    os.makedirs(tmp_path / 'empty' / 'masks')
    cfg.train_dataloader.dataset.update(
        data_root=str(tmp_path / 'empty'), split=None)
    with pytest.raises(ValueError, match='training images .*empty/images'):
        training_images(cfg, 'empty.py')

    cfg = Config.fromfile(int8['config'])
    cfg.train_dataloader.dataset.split = None  # the validation images too
    with pytest.raises(ValueError, match='2 training image.*val_dataloader'):
        training_images(cfg, 'no_split.py')
    cfg = Config.fromfile(int8['config'])
    cfg.test_dataloader.dataset.data_root = int8['train']  # a leak
    with pytest.raises(ValueError, match='also in test_dataloader'):
        training_images(cfg, 'leak.py')
    cfg.pop('train_dataloader')
    with pytest.raises(ValueError, match='no train_dataloader'):
        training_images(cfg, 'no_train.py')
    with pytest.raises(ValueError, match='at least 1'):
        calibration_images(['a.png'], 0)
    with pytest.raises(ValueError, match='no calibration images'):
        quantize_onnx(int8['onnx'], [], str(tmp_path / 'x.int8.onnx'))
    with pytest.raises(ValueError, match='quantised already'):
        quantize_onnx(int8['int8'], ['a.png'])


def _tiny_data_root(int8) -> str:
    """A data root whose TestDataset/tiny is the fixture's test folder."""
    root = int8['root'] / 'data_root'
    if not (root / 'TestDataset' / 'tiny').is_dir():
        (root / 'TestDataset').mkdir(parents=True)
        os.symlink(int8['test'], root / 'TestDataset' / 'tiny')
    return str(root)


def _mmseg_mdice(config: str, checkpoint: str, pairs) -> float:
    """Mean Dice of the PyTorch model through mmseg's inference and
    PolypMetric, as tools/test.py measures it."""
    from mmengine.runner import load_checkpoint
    from mmengine.structures import PixelData
    from mmseg.apis import inference_model
    from mmseg.structures import SegDataSample

    from mmseg_kdas.datasets.transforms import binarize_mask
    from mmseg_kdas.evaluation import PolypMetric
    cfg = Config.fromfile(config)
    model = build_segmentor(cfg)
    load_checkpoint(model, checkpoint, map_location='cpu')
    dataset = cfg.test_dataloader.dataset
    pipeline = dataset.get('pipeline') or dataset.datasets[0].pipeline
    cfg.test_pipeline = [t for t in pipeline
                         if t.type != 'LoadPolypAnnotations']  # no mask
    model.cfg = cfg  # what inference_model reads the test pipeline from
    model.eval()
    metric = PolypMetric(default_test_set='tiny')
    for image, mask in pairs:
        sample = inference_model(model, image)
        gt = binarize_mask(cv2.imread(mask, cv2.IMREAD_UNCHANGED))
        out = SegDataSample(seg_logits=sample.seg_logits, metainfo=dict(
            img_path=image))
        out.gt_sem_seg = PixelData(data=torch.from_numpy(gt)[None].long())
        metric.process({}, [out.to_dict()])
    return metric.compute_metrics(metric.results)['tiny/mDice']


def test_accuracy_of_the_int8_model_on_a_test_set(int8, monkeypatch,
                                                  capsys):
    from mmseg_kdas.deployment.accuracy import set_accuracy, test_set_pairs
    data_root = _tiny_data_root(int8)
    pairs = test_set_pairs(data_root, 'tiny')
    assert [osp.basename(i) for i, _ in pairs] == ['0.png', '1.png']
    out = str(int8['root'] / 'accuracy.json')
    openvino = int8['int8'] + '@openvino:int8'
    assert run_tool(monkeypatch, 'tools/analysis_tools/deploy_accuracy.py',
                    int8['onnx'], int8['int8'], openvino, '--data-root',
                    data_root, '--test-sets', 'tiny', '--threads', 1,
                    '--out', out) == 0
    import json
    with open(out) as f:
        figures = json.load(f)['tiny']
    float_, quantized = figures[int8['onnx']], figures[int8['int8']]
    # the float export scores what mmseg's PyTorch model scores
    assert float_['mDice'] == pytest.approx(
        _mmseg_mdice(int8['config'], int8['checkpoint'], pairs), abs=1e-3)
    assert float_['frames'] == 2 and 'delta_mDice' not in float_
    assert quantized['delta_mDice'] == pytest.approx(
        quantized['mDice'] - float_['mDice'])
    assert 0 <= quantized['max_abs_prob_diff'] <= 0.2  # the agreement bound
    assert 0 <= quantized['mask_share_differ'] <= 0.06
    assert figures[openvino]['frames'] == 2  # the same file under OpenVINO
    assert 0 <= figures[openvino]['max_abs_prob_diff'] <= 0.4
    assert 'reference' in capsys.readouterr().out
    # a model against itself: nothing changes
    same = build_predictor(int8['onnx'], threads=1)
    self_check = set_accuracy([('a', same), ('b', same)], pairs)
    assert self_check['b']['delta_mDice'] == 0
    assert self_check['b']['max_abs_prob_diff'] == 0
    assert self_check['b']['mask_share_differ'] == 0
    # --max-delta: a change past it fails the check
    assert quantized['delta_mDice'] != 0  # else the next check is empty
    assert run_tool(
        monkeypatch, 'tools/analysis_tools/deploy_accuracy.py',
        int8['onnx'], int8['int8'], '--data-root', data_root,
        '--test-sets', 'tiny', '--threads', 1, '--max-delta',
        abs(quantized['delta_mDice']) / 2) == 1


def test_accuracy_names_a_missing_mask(int8, tmp_path):
    from mmseg_kdas.deployment.accuracy import test_set_pairs
    root = tmp_path / 'TestDataset' / 'x'
    (root / 'images').mkdir(parents=True)
    (root / 'masks').mkdir()
    image = read_image(osp.join(int8['test'], 'images', '0.png'))
    cv2.imwrite(str(root / 'images' / 'a.png'), image)
    cv2.imwrite(str(root / 'masks' / 'b.png'), image[..., 0])
    with pytest.raises(FileNotFoundError, match=r'a.png: no mask a\.\*'):
        test_set_pairs(str(tmp_path), 'x')
    with pytest.raises(FileNotFoundError, match='no folder'):
        test_set_pairs(str(tmp_path), 'y')


def _int8_weights(path: str):
    import onnx
    from onnx import numpy_helper
    model = onnx.load(path)
    return [numpy_helper.to_array(t) for t in model.graph.initializer
            if t.data_type == onnx.TensorProto.INT8 and t.dims]


def test_reduce_range_keeps_weights_to_7_bits(int8, monkeypatch, tmp_path):
    onnx_path = str(tmp_path / 'tiny.onnx')
    assert run_tool(monkeypatch, 'tools/deployment/pytorch2onnx.py',
                    int8['config'], int8['checkpoint'], '--out', onnx_path,
                    '--precision', 'int8', '--reduce-range', '--calib-num',
                    CALIB_NUM, '--threads', 1) == 0
    reduced = str(tmp_path / 'tiny.int8.onnx')
    spec = build_predictor(reduced, threads=1).spec
    assert spec.source['quantization']['reduce_range'] is True
    # 8-bit weights reach -127 or 127 (symmetric per channel); 7-bit ones
    # (ONNX Runtime's reduced symmetric range) stay within [-64, 64]
    full = _int8_weights(int8['int8'])
    assert full and max(int(np.abs(w.astype(int)).max()) for w in full) > 64
    weights = _int8_weights(reduced)
    assert len(weights) == len(full)
    assert max(int(np.abs(w.astype(int)).max()) for w in weights) <= 64
    assert run_tool(monkeypatch, 'tools/deployment/pytorch2onnx.py',
                    int8['config'], int8['checkpoint'], '--out', onnx_path,
                    '--reduce-range') == 1
