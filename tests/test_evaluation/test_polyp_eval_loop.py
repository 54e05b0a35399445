"""PolypMetric and the overlays inside MMEngine's test loop (tiny model)."""
import glob
import os.path as osp
import subprocess
import sys
import uuid

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.runner import Runner
from mmseg.registry import MODELS

from mmseg_kdas.datasets import make_synthetic_polyp_dataset
from mmseg_kdas.evaluation import (PolypMetric, polyp_image_measures,
                                   prepare_prediction)
from mmseg_kdas.testing import tiny_binary_segformer

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BASE = osp.join(ROOT, 'configs', '_base_', 'datasets')

# A tiny binary SegFormer with one output channel, as the polyp heads.
MODEL = tiny_binary_segformer()


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('polyp'))
    make_synthetic_polyp_dataset(
        root, num_train=1, num_test=3, size=(40, 56), test_sets=('Kvasir', ))
    make_synthetic_polyp_dataset(
        root, num_train=1, num_test=2, size=(64, 48),
        test_sets=('CVC-300', ))
    return root


def test_loop_figures_equal_a_direct_computation(data_root, tmp_path):
    base = Config.fromfile(osp.join(BASE, 'pranet_polyp.py'))
    datasets = [
        d for d in base.val_dataloader.dataset.datasets
        if d.test_set in ('Kvasir', 'CVC-300')
    ]
    for d in datasets:
        d.data_root = data_root
    vis_dir = str(tmp_path / 'vis')
    cfg = Config(
        dict(
            model=MODEL,
            work_dir=str(tmp_path / 'work'),
            default_scope='mmseg',
            test_dataloader=dict(
                batch_size=1,
                num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=False),
                dataset=dict(type='ConcatDataset', datasets=datasets)),
            test_evaluator=base.test_evaluator,
            test_cfg=dict(type='TestLoop'),
            default_hooks=dict(
                visualization=dict(type='PolypVisualizationHook',
                                   draw=True)),
            visualizer=dict(
                type='PolypLocalVisualizer',
                vis_backends=[dict(type='LocalVisBackend')],
                name=f'vis_{uuid.uuid4().hex}',
                save_dir=vis_dir),
            experiment_name=f'loop_{uuid.uuid4().hex}',
            randomness=dict(seed=0),
            log_level='WARNING'))
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()

    # the same model and data, measured image by image with the pure
    # functions (the default protocol: min-max normalised, 8-bit maps)
    model = runner.model.eval()
    dataset = runner.test_dataloader.dataset
    per_set = {}
    with torch.no_grad():
        for i in range(len(dataset)):
            out = model.test_step(pseudo_collate([dataset[i]]))[0]
            prob = out.seg_logits.data[0].numpy()
            gt = out.gt_sem_seg.data[0].numpy()
            assert prob.shape == gt.shape == tuple(out.ori_shape)
            per_set.setdefault(out.test_set, []).append(
                polyp_image_measures(prepare_prediction(prob), gt))
    assert list(per_set) == ['Kvasir', 'CVC-300']
    assert [len(v) for v in per_set.values()] == [3, 2]
    for test_set, items in per_set.items():
        for key in ('Dice', 'IoU', 'mDice', 'mIoU', 'Sm', 'wFm', 'mEm',
                    'MAE'):
            assert metrics[f'{test_set}/{key}'] == pytest.approx(
                np.mean([m[key] for m in items]), abs=1e-12), key
    assert metrics['mDice'] == pytest.approx(
        (metrics['Kvasir/mDice'] + metrics['CVC-300/mDice']) / 2)

    # one overlay per image, named by test set, image | gt | prediction
    files = sorted(
        osp.basename(f)
        for f in glob.glob(osp.join(vis_dir, '**', '*.png'), recursive=True))
    assert files == [f'CVC-300_000{i}_0.png' for i in range(2)] + \
        [f'Kvasir_000{i}_0.png' for i in range(3)]
    drawn = cv2.imread(
        glob.glob(osp.join(vis_dir, '**', 'Kvasir_0001_0.png'),
                  recursive=True)[0])
    assert drawn.shape == (40, 3 * 56 + 2 * 2, 3)


def test_tools_test_show_dir(data_root, tmp_path):
    model = MODELS.build(MODEL)
    checkpoint = str(tmp_path / 'tiny.pth')
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    config = tmp_path / 'tiny_polyp.py'
    config.write_text(f"""
_base_ = ['{osp.join(BASE, 'pranet_polyp_kvasir.py')}',
          'mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['mmseg_kdas'], allow_failed_imports=False)
model = {MODEL!r}
test_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={data_root!r}))
test_cfg = dict(type='TestLoop')
train_dataloader = None
val_dataloader = None
val_evaluator = None
default_hooks = dict(visualization=dict(type='PolypVisualizationHook'))
visualizer = dict(
    type='PolypLocalVisualizer',
    vis_backends=[dict(type='LocalVisBackend')],
    name='visualizer')
""")
    show_dir = str(tmp_path / 'show')
    proc = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'test.py'),
        str(config), checkpoint, '--show-dir', show_dir, '--work-dir',
        str(tmp_path / 'work')
    ],
                          cwd=ROOT,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert 'Kvasir' in proc.stdout and 'mDice' in proc.stdout
    files = sorted(
        osp.basename(f)
        for f in glob.glob(osp.join(show_dir, '**', '*.png'), recursive=True))
    assert files == [f'Kvasir_000{i}_0.png' for i in range(3)]


def test_metric_default_is_the_reference_protocol():
    # The reference test scripts save (p - min) / (max - min) as an 8-bit
    # PNG, which the toolbox reads back as k / 255 and thresholds at 0.5.
    gt = np.zeros((4, 6), np.int64)
    gt[:, :3] = 1
    prob = np.full((4, 6), 0.2)
    prob[:, :3] = 0.45  # below 0.5 as it is: a raw map would score Dice 0
    prob[0, 3:] = 0.29  # 0.36 once stretched: 91.8 / 255, saved as 92
    saved = np.rint((prob - 0.2) / 0.25 * 255) / 255

    def evaluate(metric):
        metric.process({}, [
            dict(
                seg_logits=dict(
                    data=torch.tensor(prob, dtype=torch.float32)[None]),
                gt_sem_seg=dict(data=torch.from_numpy(gt)[None]),
                test_set='Kvasir',
                img_path='a.png')
        ])
        return metric.compute_metrics(metric.results)

    result = evaluate(PolypMetric())
    assert result['Kvasir/Dice'] == pytest.approx(1.0)
    assert result['Kvasir/MAE'] == pytest.approx(
        np.abs(saved - gt).mean(), abs=1e-7)
    # neither stretched nor rounded, the same map scores otherwise
    raw = evaluate(PolypMetric(min_max_normalize=False, quantize=False))
    assert raw['Kvasir/Dice'] == 0
