"""Per-image figures by polyp size (mmseg_kdas.evaluation.per_image), and
their analysis of a study work dir (mmseg_kdas.study.per_image,
tools/analysis_tools/polyp_sizes.py), on hand-made and tiny generated data.
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT, load_tool

from mmseg_kdas.datasets import make_synthetic_polyp_dataset
from mmseg_kdas.evaluation import PolypMetric
from mmseg_kdas.evaluation.per_image import (per_image_figures, size_bins,
                                             summarise_by_size)
from mmseg_kdas.study import per_image as study_per_image
from mmseg_kdas.study.per_image import (StudyModel, check_recorded_dice,
                                        format_per_image, per_image)
from mmseg_kdas.study.protocol import ProtocolError
from mmseg_kdas.study.runner import latest_metrics

SET = 'CVC-ColonDB'


def _gt():
    """10 x 10 frame, a 2 x 2 polyp at rows / columns 2-3."""
    gt = np.zeros((10, 10), np.uint8)
    gt[2:4, 2:4] = 1
    return gt


def test_figures_by_hand():
    gt = _gt()
    pred = gt.astype(np.float64)
    pred[7:9, 7:9] = 1  # a 2 x 2 blob off the polyp
    f = per_image_figures(pred, gt)
    # at the 255 thresholds above 0: 8 predicted, 4 true, 4 in the mask;
    # at threshold 0 every pixel is predicted (the toolbox's convention)
    assert f['dice_at_threshold'] == pytest.approx(2 * 4 / (4 + 8))
    assert f['iou_at_threshold'] == pytest.approx(4 / 8)
    assert f['dice'] == pytest.approx((255 * 2 / 3 + 8 / 104) / 256)
    assert f['iou'] == pytest.approx((255 * 0.5 + 4 / 100) / 256)
    assert (f['gt_share'], f['pred_share']) == (0.04, 0.08)
    assert f['false_positive'] and not f['missed']
    # exactly the polyp, or touching it diagonally (8-connected): no alarm
    exact = per_image_figures(gt.astype(float), gt)
    assert exact['dice_at_threshold'] == 1 and not exact['false_positive']
    assert exact['dice'] == pytest.approx((255 + 8 / 104) / 256)
    diagonal = gt.astype(float)
    diagonal[4, 4] = 1
    assert not per_image_figures(diagonal, gt)['false_positive']
    # the blob alone: missed, and a false positive
    blob = pred - gt
    f = per_image_figures(blob, gt)
    assert f['missed'] and f['false_positive']
    assert f['dice_at_threshold'] == 0
    assert f['dice'] == pytest.approx(8 / 104 / 256)
    # the threshold, without min-max normalisation: 0.4 is below 0.5
    soft = 0.6 * gt + 0.4 * blob
    f = per_image_figures(soft, gt, min_max_normalize=False)
    assert not f['false_positive'] and f['dice_at_threshold'] == 1
    assert f['pred_share'] == 0.04
    assert per_image_figures(soft, gt, 0.3, False)['false_positive']
    # an empty mask: any predicted region is a false positive, none missed
    f = per_image_figures(pred, np.zeros_like(gt))
    assert f['false_positive'] and not f['missed'] and f['gt_share'] == 0


def test_figures_are_the_metrics():
    # dice / dice_at_threshold are PolypMetric's mDice / Dice of the frame
    rng = np.random.default_rng(0)
    gt = _gt()
    prob = np.clip(0.7 * gt + rng.uniform(0, 0.5, gt.shape), 0, 1)
    metric = PolypMetric()
    metric.process({}, [dict(
        test_set='s', img_path='a.png',
        seg_logits=dict(data=torch.from_numpy(prob)[None].float()),
        gt_sem_seg=dict(data=torch.from_numpy(gt)[None]))])
    f = per_image_figures(
        torch.from_numpy(prob).float().numpy(), gt)
    assert f['dice'] == metric.results[0]['mDice']
    assert f['dice_at_threshold'] == metric.results[0]['Dice']
    assert f['iou'] == metric.results[0]['mIoU']


def test_size_bins():
    assert size_bins(0.04) == 'small'
    assert size_bins(0.05) == 'large'
    assert size_bins(0.0) == 'empty'
    labels = size_bins([0.01, 0.5, 0], small=0.02)
    assert labels == ['small', 'large', 'empty']
    assert size_bins(0.04, small=0.03) == 'large'
    for bad in (0, 1, -0.1):
        with pytest.raises(ValueError, match='small must be'):
            size_bins(0.1, small=bad)
    with pytest.raises(ValueError, match='gt_share'):
        size_bins(1.5)


def test_summary_by_hand():
    rows = [
        dict(model='A', gt_share=0.01, dice=0.2, false_positive=True,
             missed=False),
        dict(model='A', gt_share=0.02, dice=0.4, false_positive=False,
             missed=True),
        dict(model='A', gt_share=0.5, dice=0.9, false_positive='False',
             missed='False'),  # as read back from a CSV
        dict(model='B', bin='large', dice=0.6, false_positive='True',
             missed=False),
    ]
    summary = summarise_by_size(rows)
    assert list(summary) == [('A', 'small'), ('A', 'large'), ('B', 'large')]
    assert summary['A', 'small'] == pytest.approx(
        dict(frames=2, dice=0.3, false_positive_rate=0.5, missed_rate=0.5))
    assert summary['A', 'large'] == dict(
        frames=1, dice=0.9, false_positive_rate=0.0, missed_rate=0.0)
    assert summary['B', 'large']['false_positive_rate'] == 1.0
    # with a boundary of 1%: A's three frames are large
    assert summarise_by_size(rows[:3], small=0.01)['A', 'large'][
        'frames'] == 3


def _run(method, seed, test=None):
    return StudyModel(method, seed, f'runs/{method}/seed{seed}', 'c.py',
                      'w.pth', dict(test=test or {}))


def _frames(dice_small, dice_large):
    return [dict(image='a.png', gt_share=0.01, dice=dice_small,
                 false_positive=True, missed=False),
            dict(image='b.png', gt_share=0.3, dice=dice_large,
                 false_positive=False, missed=False)]


def test_markdown_summary_by_hand():
    tables = [
        (_run('teacher', 0), _frames(0.8, 0.9)),
        (_run('student', 0), _frames(0.4, 0.7)),
        (_run('student', 1), _frames(0.6, 0.5)),
        (_run('KDAS (paper)', 0), _frames(0.5, 0.6)),
        (_run('KDAS (paper)', 1), _frames(0.7, 0.5)),
    ]
    md = format_per_image(tables, SET)
    # mean Dice over seeds, per bin: student 0.5 / 0.6, KDAS 0.6 / 0.55
    assert '| small | 1 | 0.8000 | 0.5000 | 0.6000 |' in md
    assert '| large | 1 | 0.9000 | 0.6000 | 0.5500 |' in md
    # paired by seed: small +0.1, +0.1; large -0.1, 0
    # paired t over the seeds: none where the differences do not vary;
    # large: mean -0.05, std 0.0707, t = -0.05 / (0.0707 / sqrt 2) = -1,
    # two-sided p at 1 degree of freedom 0.5
    assert ('| KDAS (paper) | small | +0.1000 | +0.1000 | +0.1000 | - | - |'
            in md)
    assert ('| KDAS (paper) | large | -0.1000 | +0.0000 | -0.0500 | -1.00 | '
            '0.5 |') in md
    # frame by frame (means over seeds): small 0.6 vs 0.5, large 0.55 vs 0.6
    assert '| KDAS (paper) | 1 / 0 | 0 / 1 |' in md
    assert '| small | 1.000 / 0.000 |' in md
    # teacher right (>= 0.5), model not: student seed 0 on the small frame
    assert '| student | 0 | 1 | 0 |' in md
    assert '| student | 1 | 0 | 0 |' in md
    assert '| KDAS (paper) | 0 | 0 | 0 |' in md


def test_recorded_dice_check():
    rows = [dict(dice=0.25, dice_at_threshold=0.5),
            dict(dice=0.75, dice_at_threshold=0.5)]
    check_recorded_dice(rows, _run('student', 0, {f'{SET}/mDice': 0.5}),
                        SET)
    check_recorded_dice(rows, _run('student', 0, {
        f'{SET}/mDice': 0.5 + 5e-7, f'{SET}/Dice': 0.5}), SET)
    for test in ({f'{SET}/mDice': 0.5 + 2e-6}, {},
                 {f'{SET}/mDice': 0.5, f'{SET}/Dice': 0.4}):
        with pytest.raises(ProtocolError, match='runs/student/seed0'):
            check_recorded_dice(rows, _run('student', 0, test), SET)


CONFIG = """_base_ = [{base!r}]
meta_keys = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
             'pad_shape', 'scale_factor', 'flip', 'flip_direction',
             'reduce_zero_label', 'test_set')
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), keep_ratio=False, backend='pillow'),
    dict(type='LoadPolypAnnotations'),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
test_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='PolypDataset', data_root={data!r},
                 data_prefix=dict(img_path='TestDataset/{set}/images',
                                  seg_map_path='TestDataset/{set}/masks'),
                 test_set={set!r}, test_mode=True, pipeline=test_pipeline))
test_evaluator = dict(type='PolypMetric')
# the runner wants loaders for the loops the config has (never built here)
train_dataloader = val_dataloader = test_dataloader
val_evaluator = test_evaluator
"""


@pytest.fixture(scope='module')
def tiny_study(tmp_path_factory):
    """A fake finished study: one tiny random model, tested with the real
    tools/test.py, as the chosen teacher, a plain student and a distilled
    student of seed 0."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    tmp = tmp_path_factory.mktemp('per_image')
    # frames of 48 x 56, resized to 64 x 64 by the pipeline and back
    data = make_synthetic_polyp_dataset(
        str(tmp / 'data'), num_train=0, num_test=3, size=(48, 56),
        test_sets=(SET, ))
    cfg_file = str(tmp / 'tiny.py')
    with open(cfg_file, 'w') as f:
        f.write(CONFIG.format(
            base=osp.join(ROOT, 'tests/data/configs/kd_study/toy_student.py'),
            data=data, set=SET))
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(cfg_file).model)
    ckpt = str(tmp / 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    test_dir = str(tmp / 'test')
    subprocess.run([sys.executable, 'tools/test.py', cfg_file, ckpt,
                    '--work-dir', test_dir], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    test = latest_metrics(test_dir)
    work = tmp / 'work'
    runs = {  # folder: (config, checkpoint, record)
        'teacher/seed0': ('teacher.py', 'best_val_mDice_iter_2.pth',
                          dict(val={'1': 0.1, '2': 0.2})),
        'runs/student/default/seed0': ('student.py', 'iter_2.pth',
                                       dict(distilled=False)),
        'runs/KDAS/a0.3_T2/seed0': ('student_config.py',
                                    'iter_2_student.pth',
                                    dict(distilled=True)),
    }
    for folder, (cfg_name, ckpt_name, record) in runs.items():
        os.makedirs(work / folder)
        shutil.copy(cfg_file, work / folder / cfg_name)
        shutil.copy(ckpt, work / folder / ckpt_name)
        (work / folder / 'record.json').write_text(
            json.dumps(dict(record, iters=2, test=test)))
    method = dict(seeds={'0': dict(test=test)})
    (work / 'results.json').write_text(json.dumps(dict(
        teacher=dict(seed=0, iter=2),
        methods={'student': dict(method, family='student'),
                 'KDAS (paper)': dict(method, family='KDAS')})))
    return work, data, test


def test_study_per_image_matches_tools_test(tiny_study, monkeypatch,
                                            capsys):
    work, data, test = tiny_study
    tool = load_tool('tools/analysis_tools/polyp_sizes.py')
    assert tool.main([str(work), data, '--test-set', SET]) == 0
    out = capsys.readouterr().out
    assert '| teacher | student | KDAS (paper) |' in out
    for name in ('teacher_seed0', 'student_seed0', 'KDAS_paper_seed0'):
        lines = (work / 'per_image' / SET / f'{name}.csv').read_text(
        ).splitlines()
        assert lines[0].startswith('image,gt_share,pred_share,dice,iou,')
        assert len(lines) == 4
        dice = [float(line.split(',')[3]) for line in lines[1:]]
        # the consistency check: the recorded mDice of tools/test.py
        assert abs(np.mean(dice) - test[f'{SET}/mDice']) <= 1e-6
    assert (work / 'per_image' / f'{SET}.md').read_text() in out
    assert tool.main([str(work), data, '--test-set', SET, '--methods',
                      'KDAS (tuned)']) == 2
    assert "no method ['KDAS (tuned)']" in capsys.readouterr().err
    # CSVs there are read, not computed again; still checked
    monkeypatch.setattr(study_per_image, 'predict_set', None)
    per_image(str(work), data, SET, methods=['student'])
    # a recorded mDice that is not the frames' mean: refused
    record_file = work / 'runs/student/default/seed0/record.json'
    results_file = work / 'results.json'
    for path, keys in ((record_file, ['test']), (results_file, [
            'methods', 'student', 'seeds', '0', 'test'])):
        obj = json.loads(path.read_text())
        node = obj
        for key in keys:
            node = node[key]
        node[f'{SET}/mDice'] += 1e-3
        path.write_text(json.dumps(obj))
    with pytest.raises(ProtocolError,
                       match='student seed 0 .*default/seed0.*record says'):
        per_image(str(work), data, SET, methods=['student'])
    # and a wrong record refuses a fresh computation too, with no CSV left
    monkeypatch.undo()
    os.remove(work / 'per_image' / SET / 'student_seed0.csv')
    assert tool.main([str(work), data, '--test-set', SET, '--methods',
                      'student']) == 2
    assert 'record says' in capsys.readouterr().err
    assert not (work / 'per_image' / SET / 'student_seed0.csv').exists()
