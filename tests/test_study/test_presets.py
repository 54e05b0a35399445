"""The shipped study configs: the binary preset on a data root without a
validation list, the GPU preset's every run config, and the plan's
seconds measured on this machine."""
import os.path as osp

import pytest
from conftest import ROOT, load_tool

from mmseg_kdas import study
from mmseg_kdas.datasets import make_synthetic_polyp_dataset
from mmseg_kdas.study.speed import measure_speed

tool = load_tool('tools/kd_study.py')
SPEED = ('speed = dict(_delete_=True, teacher=1.25, student=0.49, '
         'kd_cached=0.54, kd_online=0.75, eval_teacher=0.25, '
         'eval_student=0.15, cache_per_image_rate=0.06)\n')


def _with_speed(tmp_path, preset):
    path = tmp_path / f'{preset}'
    path.write_text(f"_base_ = ['{ROOT}/configs/kd_study/{preset}']\n" +
                    SPEED)
    return str(path)


def test_the_binary_preset_plans_a_study_of_any_data_root(tmp_path, capsys):
    data = make_synthetic_polyp_dataset(
        str(tmp_path / 'data'), num_train=40, num_test=2,
        test_sets=('Organ', ))
    work = tmp_path / 'work'
    argv = [_with_speed(tmp_path, 'binary-cpu-128.py'), data, '--work-dir',
            str(work), '--dry-run']
    assert tool.main(argv) == 0
    out = capsys.readouterr().out
    assert ('Test sets: Organ (2 images); validation split: 4 of 40 '
            'training images (to be made, seeded)') in out
    assert '1 teacher: 1 step(s)' in out and '4 grid: 15 step(s)' in out
    assert not work.exists()  # a dry run writes nothing


def test_the_gpu_preset_builds_every_run_config(tmp_path, capsys):
    data = make_synthetic_polyp_dataset(
        str(tmp_path / 'data'), num_train=4, num_test=1)
    args = study.load_study(
        osp.join(ROOT, 'configs/kd_study/polyp-gpu-352.py'),
        data_root=data, work_dir=str(tmp_path / 'work'))
    assert (args.device, args.gpus, args.size, args.batch_size,
            args.lr) == ('cuda', 1, 352, 16, 1e-4)
    args.split_file = osp.join(ROOT, args.val_split['file'])
    runs = [(args.teacher, (), True)]
    for family, grid in args.grids.items():
        runs += [(args.families[family], s, False) for s in grid]
    selected = {f: g[-1] for f, g in args.grids.items()}
    runs += [(args.families[r.family], r.setting, False)
             for r in study.final_methods(args.methods, selected).values()]
    for base, setting, teacher in runs:
        cfg = study.protocol_config(args, base, ['Kvasir'], 0,
                                    teacher=teacher, teacher_ckpt='t.pth',
                                    setting=setting)
        models = ([cfg.model.student, cfg.model.teacher]
                  if cfg.model.type == 'KDASDistiller' else [cfg.model])
        # ImageNet backbones (from pretrain/), except the distilling
        # teacher's, which loads teacher_ckpt
        assert models[0].backbone.init_cfg.checkpoint.startswith('pretrain/')
        assert cfg.train_dataloader.batch_size == 16
        assert cfg.train_dataloader.dataset.pipeline[2].scale == (352, 352)
        assert cfg.train_cfg.max_iters == (8000 if teacher else 4800)
        assert cfg.optim_wrapper.optimizer.lr == 1e-4
        for key, value in setting:
            node = cfg.model
            for part in key.split('.'):
                node = node[part]
            assert node == value
    settings = study.protocol_settings(args)
    assert 'cpu_env' not in settings
    assert (settings['device'], settings['gpus']) == ('cuda', 1)
    # its dry run plans it with the config's seconds (no CUDA needed)
    assert tool.main([
        osp.join(ROOT, 'configs/kd_study/polyp-gpu-352.py'), data,
        '--work-dir',
        str(tmp_path / 'work'), '--dry-run'
    ]) == 0
    out = capsys.readouterr().out
    assert ('Plan (estimated minutes on 1 GPU(s), seconds per step from '
            'the study config)') in out


def test_the_plan_measures_this_machine(tmp_path):
    data = make_synthetic_polyp_dataset(
        str(tmp_path / 'data'), num_train=4, num_test=1)
    args = study.load_study(
        osp.join(ROOT, 'tests/data/configs/kd_study/toy.py'), data_root=data)
    args.split_file = str(tmp_path / 'val.txt')
    seconds = measure_speed(args, steps=1)
    assert set(seconds) == set(study.settings.SPEED_KEYS)
    assert all(v > 0 for v in seconds.values())
    assert seconds['kd_online'] > seconds['student']
    assert seconds['kd_cached'] == pytest.approx(seconds['student'] * 1.1)
    assert seconds['eval_student'] > 0.1  # the reading and the metric


def test_a_cuda_study_without_cuda_or_seconds_stops(tmp_path, capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    data = make_synthetic_polyp_dataset(
        str(tmp_path / 'data'), num_train=4, num_test=1)
    argv = [osp.join(ROOT, 'configs/kd_study/polyp-gpu-352.py'), data,
            '--work-dir', str(tmp_path / 'work'), '--dry-run',
            '--cfg-options', 'speed=None']
    assert tool.main(argv) == 2
    assert "device 'cuda' but this machine has no CUDA" in (
        capsys.readouterr().err)


def test_training_commands_by_device():
    one = study.runner.train_command('c.py', 'w')
    assert one[1:] == ['tools/train.py', 'c.py', '--work-dir', 'w',
                       '--resume']
    assert study.runner.train_command('c.py', 'w', gpus=4) == [
        'bash', 'tools/dist_train.sh', 'c.py', '4', '--work-dir', 'w',
        '--resume'
    ]


def test_a_cpu_study_hides_cuda_and_a_cuda_study_keeps_the_environment(
        tmp_path, monkeypatch):
    import sys
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '0')
    monkeypatch.setenv('MKL_CBWR', 'AUTO')
    code = ('import os; print(os.environ["CUDA_VISIBLE_DEVICES"] or "-", '
            'os.environ["MKL_CBWR"])')
    log = str(tmp_path / 'log.txt')
    study.run([sys.executable, '-c', code], log, threads=2)
    study.run([sys.executable, '-c', code], log, threads=2, device='cuda')
    assert open(log).read().split() == ['-', 'AVX2,STRICT', '0', 'AUTO']
