import importlib.util
import os.path as osp

import pytest
import torch
from conftest import ROOT
from kdas_helpers import make_batch, tiny_list_model
from mmengine.config import Config
from mmengine.runner import Runner
from mmseg.apis import MMSegInferencer, inference_model, init_model

from mmseg_kdas.engine.hooks.student_export_hook import with_one_test_pipeline
from mmseg_kdas.models.distillers import (student_checkpoint, student_config,
                                          student_state_dict)

META_KEYS = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
             'pad_shape', 'scale_factor', 'flip', 'flip_direction',
             'reduce_zero_label', 'test_set')


def _load_converter():
    path = osp.join(ROOT, 'tools', 'model_converters', 'kdas2student.py')
    spec = importlib.util.spec_from_file_location('kdas2student', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _test_sets(data_root: str, pipeline: list) -> dict:
    """Two test sets in one pass, as the five of the PraNet configs."""
    return dict(
        type='ConcatDataset',
        datasets=[
            dict(
                type='PolypDataset',
                data_root=data_root,
                data_prefix=dict(img_path='images', seg_map_path='masks'),
                test_set=name,
                test_mode=True,
                pipeline=pipeline) for name in ('A', 'B')
        ])


def _run_config(work_dir: str, data_root: str) -> Config:
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='Resize', scale=(32, 32), keep_ratio=False),
        dict(type='PackSegInputs')
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(32, 32), keep_ratio=False),
        dict(type='LoadPolypAnnotations'),
        dict(type='PackSegInputs', meta_keys=META_KEYS)
    ]
    dataset = dict(
        type='BaseSegDataset',
        data_root=data_root,
        metainfo=dict(classes=('background', 'polyp')),
        data_prefix=dict(img_path='images', seg_map_path='masks'),
        img_suffix='.png',
        seg_map_suffix='.png',
        pipeline=pipeline)
    return Config(
        dict(
            default_scope='mmseg',
            work_dir=work_dir,
            model=dict(
                type='KDASDistiller',
                teacher=tiny_list_model(16),
                student=tiny_list_model(8),
                alpha=0.5),
            train_dataloader=dict(
                batch_size=2,
                num_workers=0,
                sampler=dict(type='InfiniteSampler', shuffle=True),
                dataset=dataset),
            test_pipeline=test_pipeline,
            test_dataloader=dict(
                batch_size=1,
                num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=False),
                dataset=_test_sets(data_root, test_pipeline)),
            test_cfg=dict(type='TestLoop'),
            test_evaluator=dict(type='PolypMetric'),
            optim_wrapper=dict(
                type='OptimWrapper',
                optimizer=dict(type='AdamW', lr=1e-3),
                constructor='KDASOptimWrapperConstructor'),
            train_cfg=dict(
                type='IterBasedTrainLoop', max_iters=4, val_interval=100),
            default_hooks=dict(
                logger=dict(type='LoggerHook', interval=1),
                checkpoint=dict(
                    type='CheckpointHook',
                    by_epoch=False,
                    interval=2,
                    max_keep_ckpts=1)),
            custom_hooks=[
                dict(type='PlainCheckpointHook'),
                dict(type='StudentExportHook'),
                dict(type='DistillWeightWarmupHook', warmup_iters=2)
            ],
            env_cfg=dict(dist_cfg=dict(backend='gloo')),
            visualizer=dict(
                type='SegLocalVisualizer',
                vis_backends=[dict(type='LocalVisBackend')],
                name='visualizer'),
            randomness=dict(seed=0),
            log_level='WARNING'))


@pytest.fixture(scope='module')
def trained(tmp_path_factory, binary_data_root):
    work_dir = str(tmp_path_factory.mktemp('kdas_run'))
    runner = Runner.from_cfg(_run_config(work_dir, binary_data_root))
    runner.train()
    return runner, work_dir


def _student_outputs(model, batch):
    model.eval()
    data = model.data_preprocessor(batch, False)
    with torch.no_grad():
        return model(**data, mode='tensor')


def test_hook_exports_each_checkpoint_as_a_student_model(trained):
    runner, work_dir = trained
    assert osp.isfile(osp.join(work_dir, 'iter_4.pth'))
    exported = osp.join(work_dir, 'iter_4_student.pth')
    assert osp.isfile(exported)
    # max_keep_ckpts=1 removed iter_2.pth, and its export with it
    assert not osp.exists(osp.join(work_dir, 'iter_2.pth'))
    assert not osp.exists(osp.join(work_dir, 'iter_2_student.pth'))

    checkpoint = torch.load(exported, map_location='cpu', weights_only=True)
    assert set(checkpoint) == {'meta', 'state_dict'}
    student = runner.model.student
    assert set(checkpoint['state_dict']) == set(student.state_dict())
    assert not any(k.startswith(('teacher.', 'sgm_necks.'))
                   for k in checkpoint['state_dict'])

    cfg_path = osp.join(work_dir, 'student_config.py')
    cfg = Config.fromfile(cfg_path)
    assert cfg.model.type == 'EncoderDecoder'
    assert [h.type for h in cfg.custom_hooks] == ['PlainCheckpointHook']
    assert 'constructor' not in cfg.optim_wrapper

    model = init_model(cfg_path, exported, device='cpu')
    assert model.dataset_meta['classes'] == ('background', 'polyp')
    for key, value in student.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    batch = make_batch(2)
    for a, b in zip(
            _student_outputs(model, batch), _student_outputs(student,
                                                             batch)):
        assert torch.equal(a, b)

    # the run tests on two sets (a ConcatDataset): the inferencer reads the
    # pipeline of the exported test set
    image = osp.join(runner.cfg.train_dataloader.dataset.data_root, 'images',
                     '0.png')
    inferencer = MMSegInferencer(
        model=cfg_path, weights=exported, device='cpu')
    prediction = inferencer(image)['predictions']
    expected = inference_model(model, image).pred_sem_seg.data[0]
    assert torch.equal(torch.as_tensor(prediction), expected.cpu())
    assert cfg.test_dataloader.dataset.pipeline == cfg.test_pipeline
    # the checkpoint alone: its meta['cfg'] is the same config
    inferencer = MMSegInferencer(None, weights=exported, device='cpu')
    prediction = inferencer(image)['predictions']
    assert torch.equal(torch.as_tensor(prediction), expected.cpu())


def test_exported_config_tests_every_set_as_the_run(trained, tmp_path):
    runner, work_dir = trained
    exported = osp.join(work_dir, 'iter_4_student.pth')
    cfg = Config.fromfile(osp.join(work_dir, 'student_config.py'))
    as_run = Config(dict(cfg, test_dataloader=runner.cfg.test_dataloader))
    assert as_run.test_dataloader.dataset.type == 'ConcatDataset'
    metrics = []
    for i, test_cfg in enumerate((cfg, as_run)):
        test_cfg.work_dir = str(tmp_path / str(i))
        test_cfg.load_from = exported
        metrics.append(Runner.from_cfg(test_cfg).test())
    assert {'A/mDice', 'B/mDice', 'A/Sm', 'B/MAE'} <= set(metrics[0])
    assert metrics[0] == metrics[1]


def test_with_one_test_pipeline(binary_data_root):
    pipeline = [dict(type='LoadImageFromFile'), dict(type='PackSegInputs')]
    concat = _test_sets(binary_data_root, pipeline)
    cfg = with_one_test_pipeline(
        Config(dict(test_dataloader=dict(batch_size=1, dataset=concat))))
    test_set = cfg.test_dataloader.dataset
    assert test_set.type == 'MultiImageMixDataset'
    assert test_set.pipeline == pipeline
    assert test_set.dataset.type == 'ConcatDataset'
    assert [d.test_set for d in test_set.dataset.datasets] == ['A', 'B']
    assert not any('pipeline' in d for d in test_set.dataset.datasets)
    assert cfg.test_dataloader.batch_size == 1

    # the same samples, in the same order, through the same transforms
    from mmseg.registry import DATASETS
    wrapped, plain = DATASETS.build(test_set), DATASETS.build(concat)
    assert len(wrapped) == len(plain) == 12
    for i in (0, 5, 6, 11):
        a, b = wrapped[i], plain[i]
        assert a['data_samples'].metainfo == b['data_samples'].metainfo
        assert torch.equal(a['inputs'], b['inputs'])

    # left as they are: one data set; data sets with different pipelines
    single = Config(dict(test_dataloader=dict(dataset=concat['datasets'][0])))
    assert with_one_test_pipeline(single).to_dict() == single.to_dict()
    mixed = Config(
        dict(
            test_dataloader=dict(
                dataset=dict(
                    concat,
                    datasets=[
                        concat['datasets'][0],
                        dict(concat['datasets'][1], pipeline=pipeline[1:])
                    ]))))
    assert with_one_test_pipeline(mixed).to_dict() == mixed.to_dict()
    assert with_one_test_pipeline(Config(dict(model=dict()))).get(
        'test_dataloader') is None


def test_warmup_hook_ramped_the_distillation_terms(trained):
    runner, _ = trained
    history, _ = runner.message_hub.get_scalar('train/loss_at_0').data
    assert len(history) == 4
    assert history[0] == 0  # multiplier 0 at iteration 0
    assert history[1] > 0
    assert runner.model.kd_multiplier == 1.0


def test_converter_writes_student_checkpoint_and_config(trained, tmp_path,
                                                        capsys):
    runner, work_dir = trained
    converter = _load_converter()
    out = str(tmp_path / 'out' / 'student.pth')
    assert converter.main([osp.join(work_dir, 'iter_4.pth'), out]) == 0
    assert osp.isfile(out) and osp.isfile(str(tmp_path / 'out' /
                                              'student.py'))
    model = init_model(str(tmp_path / 'out' / 'student.py'), out, 'cpu')
    for key, value in runner.model.student.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key

    # without a config in the checkpoint's meta, --config is needed
    bare = str(tmp_path / 'bare.pth')
    torch.save(dict(state_dict=runner.model.state_dict()), bare)
    assert converter.main([bare, str(tmp_path / 'x.pth')]) == 1
    assert '--config' in capsys.readouterr().err
    assert converter.main([str(tmp_path / 'missing.pth'), out]) == 1
    assert 'missing.pth' in capsys.readouterr().err


def test_export_functions():
    state = {
        'student.backbone.w': torch.ones(1),
        'teacher.backbone.w': torch.zeros(1),
        'sgm_necks.0.adapter.weight': torch.zeros(1)
    }
    assert list(student_state_dict(state)) == ['backbone.w']
    with pytest.raises(KeyError, match='student.'):
        student_state_dict({'backbone.w': torch.ones(1)})
    ckpt = student_checkpoint(
        dict(state_dict=state, meta=dict(cfg='x', iter=3)))
    assert ckpt['meta'] == dict(iter=3)
    with pytest.raises(ValueError, match='KDASDistiller'):
        student_config(Config(dict(model=dict(type='EncoderDecoder'))))


def test_student_config_drops_the_runs_resume_and_load_from():
    # a KDAS run resumed with --resume must not make the exported student's
    # tools/test.py try to resume from the student checkpoint
    cfg = Config(
        dict(
            model=dict(
                type='KDASDistiller',
                teacher=dict(type='EncoderDecoder'),
                student=dict(type='EncoderDecoder')),
            resume=True,
            load_from='work_dirs/run/iter_4.pth'))
    student = student_config(cfg)
    assert student.resume is False and student.load_from is None
    assert student.model.type == 'EncoderDecoder'
