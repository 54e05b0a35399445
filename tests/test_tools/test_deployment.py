"""ONNX export (tools/deployment/pytorch2onnx.py) and tools/infer.py.

One tiny Polyp-PVT (PVTv2 of 16-128 channels, one block per stage, the
full decoder) is exported once through the tool, with ``--verify``; the
other tests reuse the file. Its random weights get the batch-norm
statistics of the generated images (as training would give them): with
PyTorch's default statistics (mean 0, variance 1) the decoder's products
of feature maps grow the logits to thousands, float32 rounding then moves
them by 1e-2 or more, and where such a logit crosses 0 the probability
moves by up to a quarter of that (2e-2 measured on the random B0 student
at 352 x 352). With calibrated statistics the logits stay within tens and
ONNX Runtime matches PyTorch to about 1e-6, inside the 1e-4 the tool
accepts for trained models.
"""
import contextlib
import io
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from conftest import write_binary_dataset
from deploy_helpers import one_thread  # noqa: F401 (autouse fixture)
from deploy_helpers import (PREPROCESSOR, SIZE, calibrate_batch_norm,
                            config_for, run_tool, softmax_segformer,
                            tiny_polyp_pvt)
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import TRANSFORMS
from mmseg.structures import SegDataSample

from mmseg_kdas.deployment import DeploySpec, build_predictor, infer
from mmseg_kdas.deployment.backends import read_onnx_spec
from mmseg_kdas.deployment.export import max_abs_difference
from mmseg_kdas.deployment.model import (DeployModel, build_deploy_model,
                                         build_segmentor, config_test_images,
                                         deploy_spec, load_segmentor_weights)
from mmseg_kdas.deployment.pipeline import postprocess, preprocess, read_image
from mmseg_kdas.testing import tiny_binary_segformer


@pytest.fixture(scope='module')
def images_dir(tmp_path_factory):
    """Six 40 x 40 images (disks on noise) under ``images/``."""
    return write_binary_dataset(str(tmp_path_factory.mktemp('deploy_data')))


@pytest.fixture(scope='module')
def exported(tmp_path_factory, images_dir):
    """Config, checkpoint, ``.onnx`` and the export tool's output."""
    root = tmp_path_factory.mktemp('deploy')
    cfg = config_for(tiny_polyp_pvt(), images_dir)
    config = str(root / 'tiny_polyp_pvt.py')
    cfg.dump(config)
    torch.manual_seed(0)
    model = build_segmentor(Config.fromfile(config))
    images = np.stack([
        cv2.resize(read_image(osp.join(images_dir, 'images', n)),
                   (SIZE, SIZE)) for n in sorted(os.listdir(
                       osp.join(images_dir, 'images')))
    ])
    calibrate_batch_norm(model, images)
    checkpoint = str(root / 'tiny.pth')
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), checkpoint)
    onnx_path = str(root / 'tiny.onnx')
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as m, contextlib.redirect_stdout(out):
        status = run_tool(m, 'tools/deployment/pytorch2onnx.py', config,
                          checkpoint, '--out', onnx_path, '--verify',
                          '--threads', 1)
    return dict(
        config=config,
        checkpoint=checkpoint,
        onnx=onnx_path,
        status=status,
        log=out.getvalue(),
        root=root)


# --- the deployed model is mmseg's inference --------------------------------


@pytest.mark.parametrize('model_fn', [
    tiny_polyp_pvt, tiny_binary_segformer, softmax_segformer
],
                         ids=['polyp_pvt', 'sigmoid_segformer',
                              'softmax_segformer'])
def test_deploy_model_is_mmseg_inference(model_fn, images_dir):
    torch.manual_seed(0)
    cfg = config_for(model_fn(), images_dir)
    init_default_scope('mmseg')
    segmentor = build_segmentor(cfg)
    spec = deploy_spec(cfg, segmentor)
    assert spec.input_size == (SIZE, SIZE)
    assert spec.resize_backend == 'pillow'
    assert spec.classes == ['background', 'polyp']
    assert spec.model_channels == 'RGB' and spec.out_channels == 1
    model = DeployModel(segmentor, spec)

    bgr = np.random.default_rng(0).integers(0, 256, (2, SIZE, SIZE, 3),
                                            dtype=np.uint8)
    rgb = torch.from_numpy(bgr[..., ::-1].copy())
    meta = dict(img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE))
    with torch.no_grad():
        prob = model(rgb)
        data = segmentor.data_preprocessor(
            dict(
                inputs=[torch.from_numpy(b).permute(2, 0, 1) for b in bgr],
                data_samples=[SegDataSample(metainfo=meta) for _ in bgr]),
            False)
        results = segmentor.predict(data['inputs'], data['data_samples'])
    seg_logits = torch.stack([r.seg_logits.data for r in results])
    if spec.activation == 'sigmoid':  # mmseg stores the sigmoid already
        expected = seg_logits
    else:
        expected = seg_logits.softmax(dim=1)[:, 1:2]
    assert prob.shape == (2, 1, SIZE, SIZE)
    # 0 to 1e-6 on an AVX-512 CPU; up to 1e-4 (9.9e-5) on an AVX2-only
    # one (AMD EPYC family 25 model 1), whose kernels round differently
    torch.testing.assert_close(prob, expected, rtol=0, atol=3e-4)
    masks = torch.stack([r.pred_sem_seg.data for r in results])
    assert torch.equal((prob > spec.threshold).long(), masks.long())


# --- pre- and post-processing ------------------------------------------------


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_preprocess_is_the_test_pipeline_resize(backend):
    image = np.random.default_rng(1).integers(0, 256, (50, 70, 3),
                                              dtype=np.uint8)
    resize = TRANSFORMS.build(
        dict(type='Resize', scale=(48, 40), keep_ratio=False,
             backend=backend))
    expected = resize(dict(img=image))['img']  # BGR, 40 x 48
    spec = DeploySpec(
        input_size=(40, 48), mean=[0] * 3, std=[1] * 3,
        resize_backend=backend)
    batch = preprocess([image, image], spec)
    assert batch.shape == (2, 40, 48, 3) and batch.dtype == np.uint8
    np.testing.assert_array_equal(batch[1], expected[..., ::-1])


def test_postprocess_binary_and_multiclass():
    spec = DeploySpec(input_size=(2, 2), mean=[0] * 3, std=[1] * 3,
                      threshold=0.5)
    prob = np.array([[[0.0, 1.0], [0.2, 0.9]]], np.float32)
    full, mask = postprocess(prob, (4, 6), spec)
    assert full.shape == (4, 6) and mask.shape == (4, 6)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    np.testing.assert_array_equal(mask == 255, full > 0.5)
    assert mask[0, 0] == 0 and mask[-1, -1] == 255

    spec3 = DeploySpec(input_size=(2, 2), mean=[0] * 3, std=[1] * 3,
                       activation='softmax', num_classes=3, out_channels=3)
    prob3 = np.zeros((3, 2, 2), np.float32)
    prob3[[0, 1, 2, 1], [0, 0, 1, 1], [0, 1, 0, 1]] = 1
    full3, labels = postprocess(prob3, (2, 2), spec3)
    assert full3.shape == (2, 2, 3)
    np.testing.assert_array_equal(labels, [[0, 1], [2, 1]])


def test_overlay_is_the_visualizer_s():
    from mmseg_kdas.deployment.pipeline import draw_overlay
    from mmseg_kdas.visualization import overlay_mask
    image = np.random.default_rng(7).integers(0, 256, (60, 80, 3),
                                              dtype=np.uint8)
    empty = np.zeros((60, 80), np.uint8)
    np.testing.assert_array_equal(draw_overlay(image, empty), image)
    mask = empty.copy()
    cv2.circle(mask, (50, 30), 12, 255, -1)
    mask[0:2, 0:3] = 255  # a second region far away: one bounding box
    for thickness in (0, 2):
        ours = draw_overlay(image, mask, (0, 255, 0), thickness=thickness)
        theirs = overlay_mask(image, mask > 0, (0, 255, 0),
                              thickness=thickness)
        assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


def test_spec_round_trip_and_errors(tmp_path):
    spec = DeploySpec(input_size=(352, 352), mean=[1, 2, 3], std=[4, 5, 6],
                      classes=['background', 'polyp'])
    spec.save(str(tmp_path / 'spec.json'))
    assert DeploySpec.load(str(tmp_path / 'spec.json')) == spec
    with pytest.raises(ValueError, match='activation'):
        DeploySpec(input_size=(8, 8), mean=[0] * 3, std=[1] * 3,
                   activation='relu')
    with pytest.raises(ValueError, match='output channels'):
        DeploySpec(input_size=(8, 8), mean=[0] * 3, std=[1] * 3,
                   out_channels=2)
    (tmp_path / 'other.json').write_text('{"format": "x"}')
    with pytest.raises(ValueError, match='other.json'):
        DeploySpec.load(str(tmp_path / 'other.json'))
    logits = DeploySpec(input_size=(352, 352), mean=[0] * 3, std=[1] * 3,
                        output_kind='logits', output_name='logits',
                        output_size=(44, 44))
    assert DeploySpec.from_dict(logits.to_dict()) == logits
    assert '[N, 1, 44, 44]' in logits.to_dict()['layout']['output']
    # a file of format version 1 (no output kind) holds probabilities
    old = spec.to_dict()
    old['format_version'] = 1
    for key in ('output_kind', 'output_size'):
        del old[key]
    assert DeploySpec.from_dict(old).output_kind == 'prob'
    with pytest.raises(ValueError, match='output_kind'):
        DeploySpec(input_size=(8, 8), mean=[0] * 3, std=[1] * 3,
                   output_kind='features')
    with pytest.raises(ValueError, match="'prob' output has the input size"):
        DeploySpec(input_size=(8, 8), mean=[0] * 3, std=[1] * 3,
                   output_size=(4, 4))


def test_spec_needs_a_size(images_dir):
    cfg = config_for(tiny_binary_segformer(PREPROCESSOR), images_dir)
    cfg.test_dataloader.dataset.pipeline[1].keep_ratio = True
    segmentor = build_segmentor(cfg)
    with pytest.raises(ValueError, match='--shape'):
        deploy_spec(cfg, segmentor, name='cfg.py')
    with pytest.raises(ValueError, match='multiples of 32'):
        deploy_spec(cfg, segmentor, shape=(48, 64))
    assert deploy_spec(cfg, segmentor, shape=(32, 64)).input_size == (32, 64)


def test_spec_of_a_student_config_with_several_test_sets(images_dir):
    from mmseg_kdas.models.distillers.export import with_one_test_pipeline
    cfg = config_for(tiny_binary_segformer(PREPROCESSOR), images_dir)
    one = cfg.test_dataloader.dataset
    cfg.test_dataloader.dataset = dict(
        type='ConcatDataset', datasets=[one, one])
    cfg = with_one_test_pipeline(cfg)  # as StudentExportHook writes it
    assert cfg.test_dataloader.dataset.type == 'MultiImageMixDataset'
    spec = deploy_spec(cfg, build_segmentor(cfg))
    assert spec.input_size == (SIZE, SIZE)
    assert spec.resize_backend == 'pillow'
    assert spec.classes == ['background', 'polyp']
    assert config_test_images(cfg) == osp.join(images_dir, 'images')


def test_weights_of_a_distiller_checkpoint_and_a_wrong_one(tmp_path):
    cfg = Config(
        dict(model=tiny_binary_segformer(PREPROCESSOR), default_scope='mmseg'))
    source, target = build_segmentor(cfg), build_segmentor(cfg)
    state = {f'student.{k}': v for k, v in source.state_dict().items()}
    state['teacher.backbone.weight'] = torch.zeros(1)
    torch.save(dict(state_dict=state), tmp_path / 'kdas.pth')
    load_segmentor_weights(target, str(tmp_path / 'kdas.pth'))
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    torch.save(dict(state_dict={'backbone.x': torch.zeros(1)}),
               tmp_path / 'wrong.pth')
    with pytest.raises(KeyError, match='wrong.pth.*missing'):
        load_segmentor_weights(target, str(tmp_path / 'wrong.pth'))


# --- export ------------------------------------------------------------------


def test_export_and_verify(exported):
    assert exported['status'] == 0, exported['log']
    assert 'verify: 6 images, one at a time and 6 as one batch' in exported[
        'log'], exported['log']
    onnx_path = exported['onnx']
    assert not [f for f in os.listdir(exported['root'])
                if f.endswith('.data')], 'weights must be embedded'
    with open(onnx_path[:-5] + '.json') as f:
        sidecar = json.load(f)
    assert sidecar['input_size'] == [SIZE, SIZE]
    assert sidecar['mean_std_in_graph'] is True
    assert sidecar['threshold'] == 0.5
    assert sidecar['classes'] == ['background', 'polyp']
    assert sidecar['format_version'] == 2
    assert sidecar['output_kind'] == 'logits'
    assert sidecar['output_size'] == [SIZE // 8, SIZE // 8]  # stride 8
    assert sidecar['source']['rewrites'] is True
    assert read_onnx_spec(onnx_path) == DeploySpec.from_dict(sidecar)
    assert 'logits output' in exported['log']
    assert 'mask pixels that differ: 0 of' in exported['log']

    import onnx
    graph = onnx.load(onnx_path).graph
    dims = [d.dim_param or d.dim_value
            for d in graph.input[0].type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1:] == [SIZE, SIZE, 3]
    assert [o.name for o in graph.output] == ['logits']

    # parity with the checkpoint's weights, one image and a batch of five
    model, spec = build_deploy_model(exported['config'],
                                     exported['checkpoint'])
    images = np.random.default_rng(2).integers(0, 256, (5, SIZE, SIZE, 3),
                                               dtype=np.uint8)
    result = max_abs_difference(
        model, onnx_path, [images[:1], images], threads=1)
    assert result['max_abs_diff'] <= 1e-4, result
    assert result['max_abs_logit'] < 100, result  # not saturated


def test_verify_needs_real_images(exported, monkeypatch, capsys):
    out = exported['root'] / 'again.onnx'
    status = run_tool(monkeypatch, 'tools/deployment/pytorch2onnx.py',
                      exported['config'], exported['checkpoint'], '--out',
                      out, '--verify', '--verify-images',
                      exported['root'] / 'missing.png')
    assert status != 0
    assert not osp.exists(out)  # checked before exporting


# --- tools/infer.py ----------------------------------------------------------


def model_args(exported, backend):
    if backend == 'pytorch':
        return [exported['config'], exported['checkpoint']]
    if backend == 'openvino':
        return [exported['onnx'], '--backend', 'openvino']
    return [exported['onnx']]


def predictor_of(exported, backend):
    """A float32 predictor of the backend (OpenVINO's default is bfloat16
    where the CPU has it)."""
    if backend == 'pytorch':
        return build_predictor(
            exported['config'], exported['checkpoint'], threads=1)
    precision = 'f32' if backend == 'openvino' else None
    return build_predictor(exported['onnx'], backend=backend, threads=1,
                           precision=precision)


@pytest.fixture(scope='module')
def folder_with_corrupt_file(tmp_path_factory, images_dir):
    folder = tmp_path_factory.mktemp('infer_images')
    rng = np.random.default_rng(3)
    for i, (h, w) in enumerate([(40, 40), (50, 30), (33, 71)]):
        cv2.imwrite(str(folder / f'img{i}.png'),
                    rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    (folder / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n not an image')
    (folder / 'notes.txt').write_text('not an image file, ignored')
    return folder


@pytest.mark.parametrize('backend', ['pytorch', 'onnxruntime', 'openvino'])
def test_infer_folder_with_a_corrupt_file(exported, folder_with_corrupt_file,
                                          backend, tmp_path, monkeypatch,
                                          capsys):
    out = tmp_path / 'out'
    status = run_tool(monkeypatch, 'tools/infer.py', folder_with_corrupt_file,
                      *model_args(exported, backend), '--out', out,
                      '--save-prob', '--save-overlay', '--threads', 1)
    err = capsys.readouterr().err
    assert status == 1
    assert 'broken.png' in err and '1 skipped' in err
    for i, (h, w) in enumerate([(40, 40), (50, 30), (33, 71)]):
        mask = cv2.imread(str(out / 'masks' / f'img{i}.png'),
                          cv2.IMREAD_UNCHANGED)
        assert mask.shape == (h, w) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        prob = cv2.imread(str(out / 'probs' / f'img{i}.png'),
                          cv2.IMREAD_UNCHANGED)
        assert prob.shape == (h, w)
        assert cv2.imread(str(out / 'overlays' / f'img{i}.jpg')).shape == (
            h, w, 3)
    assert sorted(os.listdir(out / 'masks')) == [
        'img0.png', 'img1.png', 'img2.png'
    ]
    with open(out / 'summary.json') as f:
        summary = json.load(f)
    assert summary['written'] == 3 and summary['backend'] == backend
    assert [f['name'] for f in summary['failures']] == [
        str(folder_with_corrupt_file / 'broken.png')
    ]


def test_backends_agree_on_masks(exported, folder_with_corrupt_file,
                                 tmp_path):
    masks = {}
    for backend in ('pytorch', 'onnxruntime', 'openvino'):
        infer(str(folder_with_corrupt_file), predictor_of(exported, backend),
              str(tmp_path / backend), progress=False)
        masks[backend] = [
            cv2.imread(str(tmp_path / backend / 'masks' / f'img{i}.png'), 0)
            for i in range(3)
        ]
    for backend in ('onnxruntime', 'openvino'):
        for a, b in zip(masks['pytorch'], masks[backend]):
            np.testing.assert_array_equal(a, b)


def test_openvino_agrees_with_onnxruntime(exported):
    """float32: graph outputs and probability maps within 1e-4."""
    ort = predictor_of(exported, 'onnxruntime')
    ov = build_predictor(exported['onnx'], backend='openvino', threads=1,
                         precision='f32')
    assert ov.precision == 'f32' and ov.compiled_precision() == 'f32'
    assert ov.spec == ort.spec and ov.spec.output_kind == 'logits'
    images = np.random.default_rng(6).integers(0, 256, (3, SIZE, SIZE, 3),
                                               dtype=np.uint8)
    for batch in (images[:1], images):
        expected, actual = ort(batch), ov(batch)
        assert actual.shape == expected.shape == (len(batch), 1,
                                                  *ov.spec.output_size)
        assert np.abs(actual - expected).max() <= 1e-4
        for a, e in zip(actual, expected):
            prob_a, _ = postprocess(a, (50, 30), ov.spec)
            prob_e, _ = postprocess(e, (50, 30), ov.spec)
            assert np.abs(prob_a - prob_e).max() <= 1e-4


def test_openvino_precision(exported, monkeypatch):
    from mmseg_kdas.deployment import backends
    native = backends.openvino_native_bf16()
    # the default: bfloat16 where native, as compiled
    ov = build_predictor(exported['onnx'], backend='openvino', threads=1)
    assert ov.precision == ov.compiled_precision() == ('bf16' if native else
                                                       'f32')
    assert backends.openvino_precision('auto') == ('bf16' if native else
                                                   'f32')
    assert backends.openvino_precision('f32') == 'f32'
    monkeypatch.setattr(backends, 'openvino_native_bf16', lambda core=None:
                        False)
    assert backends.openvino_precision('auto') == 'f32'
    with pytest.raises(ValueError, match='no native bfloat16'):
        backends.openvino_precision('bf16')
    with pytest.raises(ValueError, match='precision must be one of'):
        backends.openvino_precision('f16')


def test_precision_needs_openvino(exported):
    with pytest.raises(ValueError, match='only the openvino backend'):
        build_predictor(exported['onnx'], precision='bf16')


def test_compare_precision_tool(exported, images_dir, tmp_path, monkeypatch,
                                capsys):
    from mmseg_kdas.deployment.backends import openvino_native_bf16
    out = tmp_path / 'result.json'
    status = run_tool(monkeypatch, 'tools/analysis_tools/compare_precision.py',
                      exported['onnx'], '--images',
                      osp.join(images_dir, 'images'), '--threads', 1,
                      '--max-change', 1, '--out', out)
    captured = capsys.readouterr()
    if not openvino_native_bf16():
        assert status != 0
        assert 'no native bfloat16' in captured.out + captured.err
        return
    assert status == 0, captured.out + captured.err
    assert '6 images: mean Dice float32' in captured.out
    with open(out) as f:
        result = json.load(f)
    assert result['images'] == 6
    assert result['mdice_change'] == pytest.approx(
        result['mdice_bf16'] - result['mdice_f32'])
    assert 0 <= result['mdice_f32'] <= 1 and result['bf16_acceptable']
    # a bar of -1 Dice cannot be met
    status = run_tool(monkeypatch, 'tools/analysis_tools/compare_precision.py',
                      exported['onnx'], '--images',
                      osp.join(images_dir, 'images'), '--threads', 1,
                      '--max-change', -1)
    assert status == 1


def write_video(path: str, frames: int = 10, size=(48, 64)) -> None:
    h, w = size
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'MJPG'), 10,
                             (w, h))
    assert writer.isOpened()
    rng = np.random.default_rng(4)
    for i in range(frames):
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        cv2.circle(frame, (20 + 2 * i, 24), 10, (40, 40, 220), -1)
        writer.write(frame)
    writer.release()


def count_frames(path: str):
    capture = cv2.VideoCapture(path)
    frames, shape = 0, None
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames, shape = frames + 1, frame.shape
    capture.release()
    return frames, shape


@pytest.mark.parametrize('backend', ['pytorch', 'onnxruntime', 'openvino'])
def test_infer_video(exported, backend, tmp_path, monkeypatch):
    video = str(tmp_path / 'clip.avi')
    write_video(video)
    out = tmp_path / 'out'
    # the overlay video only when asked (one backend asks)
    overlay = backend == 'onnxruntime'
    status = run_tool(monkeypatch, 'tools/infer.py', video,
                      *model_args(exported, backend), '--out', out,
                      '--threads', 1, *(['--save-overlay'] * overlay))
    assert status == 0
    assert sorted(os.listdir(out / 'masks')) == [
        f'clip_{i:06d}.png' for i in range(10)
    ]
    assert cv2.imread(str(out / 'masks' / 'clip_000000.png'),
                      0).shape == (48, 64)
    if overlay:
        assert count_frames(str(out / 'clip_overlay.mp4')) == (10,
                                                               (48, 64, 3))
        assert len(os.listdir(out / 'overlays')) == 10
    else:
        assert not (out / 'clip_overlay.mp4').exists()
        assert not (out / 'overlays').exists()
    with open(out / 'summary.json') as f:
        summary = json.load(f)
    assert summary['written'] == 10 and summary['failures'] == []
    assert summary['fps'] > 0
    # OpenVINO's default: bfloat16 where native; the others float32
    from mmseg_kdas.deployment.backends import openvino_precision
    assert summary['precision'] == (openvino_precision('auto') if backend
                                    == 'openvino' else 'f32')
    assert summary['outputs'] == ([str(out / 'clip_overlay.mp4')]
                                  if overlay else [])
    for times in (summary['stage_seconds'], summary['stage_cpu_seconds']):
        assert set(times) == {'read', 'infer', 'postprocess'} | (
            {'encode'} if overlay else set())
        assert all(t >= 0 for t in times.values())
    assert 0 < summary['stage_seconds']['infer'] < summary['seconds']


def test_infer_video_with_broken_and_missing_frames(exported, tmp_path):
    video = str(tmp_path / 'clip.avi')
    write_video(video)
    data = bytearray(open(video, 'rb').read())
    starts = [i for i in range(len(data) - 1)
              if data[i:i + 3] == b'\xff\xd8\xff']  # JPEG frames
    assert len(starts) == 10
    data[starts[4]:starts[4] + 300] = bytes(300)  # frame 4 undecodable
    del data[starts[8] + 50:]  # frames 8 and 9 cut off
    open(video, 'wb').write(data)

    report = infer(video, build_predictor(exported['onnx'], threads=1),
                   str(tmp_path / 'out'), save_overlay=True, progress=False)
    assert report.written == 7
    assert [name.rsplit(' ', 1)[1] for name, _ in report.failures] == [
        '4', '8', '9'
    ]
    assert sorted(os.listdir(tmp_path / 'out' / 'masks')) == [
        f'clip_{i:06d}.png' for i in (0, 1, 2, 3, 5, 6, 7)
    ]
    assert count_frames(report.outputs[0])[0] == 7


def test_predictor_errors(exported):
    with pytest.raises(ValueError, match='not an .onnx file'):
        build_predictor(exported['onnx'], backend='pytorch')
    with pytest.raises(ValueError, match='CHECKPOINT'):
        build_predictor(exported['config'])
    with pytest.raises(ValueError, match='export it again'):
        build_predictor(exported['onnx'], shape=(32, 32))
    with pytest.raises(ValueError, match='export the config first'):
        build_predictor(exported['config'], exported['checkpoint'],
                        backend='onnxruntime')
    with pytest.raises(ValueError, match='openvino backend runs an .onnx'):
        build_predictor(exported['config'], exported['checkpoint'],
                        backend='openvino')
