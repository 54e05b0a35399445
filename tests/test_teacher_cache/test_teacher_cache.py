"""The teacher cache: exact maps and terms, and every refusal, in-process."""
import copy
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from conftest import CONFIGS, ROOT
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, MODELS

from mmseg_kdas.datasets import make_synthetic_polyp_dataset
from mmseg_kdas.engine import find_multiscale_augment
from mmseg_kdas.teacher_cache import (MANIFEST, TeacherCache,
                                      TeacherCacheError, build_teacher_cache,
                                      canonical, check_deterministic,
                                      dataset_image_paths, dataset_pipelines,
                                      first_difference, randomness_problems)
from mmseg_kdas.testing import tiny_polyp_pvt

init_default_scope('mmseg')
RATES = (0.5, 1.0, 1.5)  # tiny_kdas_resume.py: 32, 64 and 96 px
# Attention transfer on the four backbone stages (teacher 'backbone:i').
AT_BASELINE = osp.join(
    ROOT, 'configs', 'kd_baselines',
    'at_polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-352x352.py')


def save_teacher(path, seed):
    torch.manual_seed(seed)
    teacher = MODELS.build(tiny_polyp_pvt([32, 64, 128, 256], 16))
    # non-trivial BatchNorm statistics, so that eval mode matters
    for module in teacher.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    torch.save(dict(state_dict=teacher.state_dict()), path)
    return str(path)


def tiny_cfg(data_root, teacher_ckpt, cache=None):
    cfg = Config.fromfile(osp.join(CONFIGS, 'tiny_kdas_cache.py'))
    cfg.train_dataloader.dataset.data_root = data_root
    cfg.model.teacher_ckpt = teacher_ckpt
    if cache is not None:
        cfg.model.teacher_cache = cache
    return cfg


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('cache')
    data_root = make_synthetic_polyp_dataset(
        str(root / 'data'), num_train=5, num_test=0)
    ckpt = save_teacher(root / 'teacher.pth', 0)
    cfg = tiny_cfg(data_root, ckpt)
    cache = build_teacher_cache(cfg, str(root / 'cache'), batch_size=2)
    return dict(root=root, data_root=data_root, ckpt=ckpt, cfg=cfg,
                cache=cache)


def checked(distiller, cfg):
    """The check TeacherCacheHook runs before training."""
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    distiller.teacher_cache.check_data(
        dataset_pipelines(cfg.train_dataloader.dataset)[0],
        dataset_image_paths(dataset))
    return distiller


def batch_of(cfg, indices):
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    return pseudo_collate([dataset[i] for i in indices])


def test_cache_layout_and_size(setup):
    cache = TeacherCache(setup['cache'])
    assert len(cache.images) == 5
    assert cache.sources == ['head:0', 'head:1']
    assert cache.sizes == [(32, 32), (64, 64), (96, 96)]
    # P1 and P2 stored at stride 8: 4 + 8 ** 2 + 12 ** 2 floats each
    files = [f for f in os.listdir(setup['cache']) if f.endswith('.npy')]
    assert len(files) == 6
    data_bytes = sum(
        np.load(osp.join(setup['cache'], f), mmap_mode='r').nbytes
        for f in files)
    assert data_bytes == 5 * 2 * 4 * (4**2 + 8**2 + 12**2)
    # no temporary folder left behind
    assert not osp.exists(setup['cache'] + '.partial')


def assert_cached_terms_equal_online_terms(model_cfg, cache, cfg,
                                           rate_index, kd_keys):
    """A distiller reading ``cache`` gives the losses of one running its
    teacher, on a batch the cache was not filled with."""
    torch.manual_seed(1)
    online = MODELS.build(copy.deepcopy(model_cfg))
    cached_cfg = copy.deepcopy(model_cfg)
    cached_cfg.teacher_cache = cache
    cached = checked(MODELS.build(cached_cfg), cfg)
    assert cached.teacher is None
    cached.load_state_dict(online.state_dict(), strict=False)
    online.train()
    cached.train()

    # a batch the cache was not filled with (images 3 and 0, not 0 and 1)
    data = batch_of(cfg, [3, 0])
    terms = {}
    for name, model in (('online', online), ('cached', cached)):
        augment = find_multiscale_augment(model)
        augment.set_rate_index(rate_index)
        processed = model.data_preprocessor(copy.deepcopy(data), True)
        terms[name] = model(**processed, mode='loss')
    kd = [k for k in terms['online'] if k.startswith(('loss_at', 'loss_sgm'))]
    assert sorted(kd) == kd_keys
    for key in terms['online']:
        torch.testing.assert_close(
            terms['cached'][key], terms['online'][key], rtol=1e-6, atol=1e-6)


def assert_cached_maps_equal_the_teacher(model_cfg, cache, cfg, run_teacher):
    """On the cache's own first batch, at every rate, the cache gives the
    bits of ``run_teacher(teacher, inputs)`` (a dict by source key)."""
    online = MODELS.build(copy.deepcopy(model_cfg))
    cache = TeacherCache(cache)
    data = batch_of(cfg, [0, 1])  # the cache's own first batch
    augment = find_multiscale_augment(online)
    for index in range(len(RATES)):
        augment.set_rate_index(index)
        processed = online.data_preprocessor(copy.deepcopy(data), True)
        inputs = processed['inputs']
        with torch.no_grad():
            expected = run_teacher(online.teacher, inputs)
        maps = cache.lookup(
            [s.img_path for s in processed['data_samples']],
            inputs.shape[-2:], list(expected), inputs.device)
        # the same batch as the fill: the same bits
        for key, value in expected.items():
            assert torch.equal(maps[key], value), (key, index)


@pytest.mark.parametrize('rate_index', [0, 1, 2])
def test_cached_terms_equal_online_terms(setup, rate_index):
    assert_cached_terms_equal_online_terms(
        setup['cfg'].model, setup['cache'], setup['cfg'], rate_index,
        ['loss_at_0', 'loss_at_1', 'loss_sgm_0'])


def test_cached_maps_equal_the_teacher(setup):
    """Upsampled on load, the stride-8 maps give the teacher's outputs."""

    def head_maps(teacher, inputs):
        p1, p2 = teacher.decode_head(teacher.extract_feat(inputs))
        return {'head:0': p1, 'head:1': p2}

    assert_cached_maps_equal_the_teacher(setup['cfg'].model, setup['cache'],
                                         setup['cfg'], head_maps)


@pytest.fixture(scope='module')
def at_setup(setup):
    """A cache of the backbone stages the AT baseline distils."""
    at = Config.fromfile(AT_BASELINE).model
    cfg = copy.deepcopy(setup['cfg'])
    for key in ('at_weight', 'at_pairs', 'loss_at', 'sgm_weight',
                'sgm_pairs'):
        cfg.model[key] = at[key]
    cache = build_teacher_cache(cfg, str(setup['root'] / 'at_cache'),
                                batch_size=2)
    return dict(cfg=cfg, cache=cache)


def test_backbone_sources_are_cached_at_full_resolution(at_setup):
    cache = TeacherCache(at_setup['cache'])
    assert cache.sources == [f'backbone:{i}' for i in range(4)]
    assert cache.sizes == [(32, 32), (64, 64), (96, 96)]
    # module outputs are stored as the module gives them (the teacher's
    # stages: 32 to 256 channels at strides 4 to 32), not upsampled
    assert len(cache.manifest['arrays']) == 12
    for entry in cache.manifest['arrays']:
        stage = int(entry['source'].split(':')[1])
        h, w = (s // 2**(stage + 2) for s in entry['size'])
        assert entry['shape'] == [5, 32 * 2**stage, h, w]
        assert entry['upsample'] is None


def test_cached_backbone_maps_equal_the_teacher(at_setup):

    def backbone_maps(teacher, inputs):
        return {
            f'backbone:{i}': feat
            for i, feat in enumerate(teacher.backbone(inputs))
        }

    assert_cached_maps_equal_the_teacher(at_setup['cfg'].model,
                                         at_setup['cache'], at_setup['cfg'],
                                         backbone_maps)


@pytest.mark.parametrize('rate_index', [0, 1, 2])
def test_cached_backbone_terms_equal_online_terms(at_setup, rate_index):
    assert_cached_terms_equal_online_terms(
        at_setup['cfg'].model, at_setup['cache'], at_setup['cfg'],
        rate_index, [f'loss_atf_{i}' for i in range(4)])


def test_lowres_upsampling_is_bit_identical():
    """The head's forward is the upsampling of forward_lowres, batch-wise
    or image by image."""
    torch.manual_seed(0)
    head = MODELS.build(tiny_polyp_pvt()).decode_head.eval()
    feats = [torch.randn(3, c, 32 // 2**i, 32 // 2**i)
             for i, c in enumerate((16, 32, 64, 128))]
    with torch.no_grad():
        full = head(feats)
        low = head.forward_lowres(feats)
    for f, lo in zip(full, low):
        assert f.shape[-2:] == (128, 128) and lo.shape[-2:] == (16, 16)
        one_by_one = torch.cat([
            torch.nn.functional.interpolate(lo[i:i + 1],
                                            **head.output_upsample)
            for i in range(3)
        ])
        assert torch.equal(one_by_one, f)


def test_mismatches_name_what_differs(setup, tmp_path):
    cfg = setup['cfg']

    def build(**changes):
        model = copy.deepcopy(cfg.model)
        model.teacher_cache = setup['cache']
        for key, value in changes.items():
            model[key] = value
        return MODELS.build(model)

    other = save_teacher(tmp_path / 'other.pth', 1)
    with pytest.raises(TeacherCacheError,
                       match='teacher checkpoint differs.*other.pth'):
        build(teacher_ckpt=other)
    # None: the cache's teacher as it is
    assert build(teacher_ckpt=None).teacher is None

    teacher = copy.deepcopy(cfg.model.teacher)
    teacher.decode_head.channels = 8
    with pytest.raises(TeacherCacheError,
                       match=r'teacher config differs: decode_head\.channels '
                       'is 16 in the cache and 8 in this run'):
        build(teacher=teacher)

    pre = copy.deepcopy(cfg.model.data_preprocessor)
    pre.batch_augments[0].rates = (0.5, 1.0, 2.0)
    with pytest.raises(TeacherCacheError,
                       match=r'preprocessing differs: multiscale\[0\]\.'
                       r'rates\[2\] is 1.5 in the cache and 2.0'):
        build(data_preprocessor=pre)
    # the mode does not change the set of sizes: accepted
    pre = copy.deepcopy(cfg.model.data_preprocessor)
    pre.batch_augments[0].mode = 'random'
    assert build(data_preprocessor=pre).teacher_cache is not None

    with pytest.raises(TeacherCacheError,
                       match=r"not cached: \['backbone:3'\]"):
        build(sgm_pairs=[dict(student='backbone:3', teacher='backbone:3',
                              neck=dict(type='SGMNeck',
                                        embedding='gram',
                                        student_channels=128,
                                        teacher_channels=256))])

    with pytest.raises(FileNotFoundError, match='not a teacher cache'):
        build(teacher_cache=str(tmp_path))


def test_pipeline_and_images_are_checked(setup, tmp_path):
    cfg = setup['cfg']
    cache = TeacherCache(setup['cache'])
    pipeline = list(dataset_pipelines(cfg.train_dataloader.dataset)[0])
    paths = dataset_image_paths(DATASETS.build(cfg.train_dataloader.dataset))
    cache.check_data(pipeline, paths)  # as made

    changed = copy.deepcopy(pipeline)
    changed[2]['scale'] = (48, 48)
    with pytest.raises(TeacherCacheError,
                       match=r'pipeline differs: pipeline\[2\]\.scale\[0\] '
                       'is 64 in the cache and 48'):
        cache.check_data(changed, paths)

    new = tmp_path / 'new.jpg'
    cv2.imwrite(str(new), np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(TeacherCacheError,
                       match=f'not in the cache: {new}'):
        cache.check_data(pipeline, paths + [str(new)])
    with pytest.raises(TeacherCacheError, match=f'image {new} is not in'):
        cache.lookup([paths[0], str(new)], (64, 64), ['head:0'], 'cpu')
    with pytest.raises(TeacherCacheError, match='no head:0 at size 80x80'):
        cache.lookup([paths[0]], (80, 80), ['head:0'], 'cpu')

    # a touched file of unchanged content passes; changed content does not
    victim = paths[1]
    content = open(victim, 'rb').read()
    try:
        os.utime(victim, ns=(1, 1))
        cache.check_data(pipeline, paths)
        img = cv2.imread(victim)
        img[0, 0] = 255 - img[0, 0]
        cv2.imwrite(victim, img)
        with pytest.raises(TeacherCacheError,
                           match=f'has changed since the cache was made: '
                           f'{victim}'):
            cache.check_data(pipeline, paths)
    finally:
        with open(victim, 'wb') as f:
            f.write(content)


def test_training_refuses_an_unchecked_cache(setup):
    model = copy.deepcopy(setup['cfg'].model)
    model.teacher_cache = setup['cache']
    distiller = MODELS.build(model).train()
    find_multiscale_augment(distiller).set_rate_index(1)
    processed = distiller.data_preprocessor(
        batch_of(setup['cfg'], [0, 1]), True)
    with pytest.raises(RuntimeError, match='TeacherCacheHook'):
        distiller(**processed, mode='loss')


@pytest.mark.parametrize('step, why', [
    (dict(type='RandomFlip', prob=0.5), r'RandomFlip\) is random \(flips'),
    (dict(type='RandomRotate', prob=0.5, degree=90), 'flips and rotations'),
    (dict(type='RandomResize', scale=(64, 64), ratio_range=(0.5, 2.0)),
     'continuous random scaling'),
    (dict(type='PhotoMetricDistortion'), 'photometric augmentation'),
    (dict(type='MyTransform'), 'not known to be deterministic'),
])
def test_random_pipelines_are_refused(setup, tmp_path, step, why):
    cfg = copy.deepcopy(setup['cfg'])
    pipeline = cfg.train_dataloader.dataset.pipeline
    pipeline.insert(3, step)
    with pytest.raises(TeacherCacheError, match=why):
        build_teacher_cache(cfg, str(tmp_path / 'refused'))
    assert not os.listdir(tmp_path)  # nothing written
    # and training from a deterministic cache with this pipeline
    cache = TeacherCache(setup['cache'])
    cache.preprocessor_cfg = cfg.model.data_preprocessor
    with pytest.raises(TeacherCacheError, match=why):
        cache.check_data(pipeline, [])


def test_deterministic_settings_are_accepted():
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='RandomFlip', prob=0.0),
                dict(type='Resize', scale=(64, 64))]
    pre = dict(batch_augments=[dict(type='BatchMultiScaleResize',
                                    mode='random')])
    assert randomness_problems(pipeline, pre) == []
    check_deterministic(pipeline, pre)
    with pytest.raises(TeacherCacheError, match='batch_augments'):
        check_deterministic(pipeline,
                            dict(batch_augments=[dict(type='Mixup')]))


def test_first_difference():
    assert first_difference(canonical(dict(a=(1, 2.0))), dict(a=[1, 2])) \
        is None
    assert first_difference(dict(a=dict(b=1)), dict(a=dict(b=2))) == \
        'a.b is 1 in the cache and 2 in this run'
    assert first_difference(dict(a=1), dict()) == \
        'a is in the cache (1) and not in this run'
    assert first_difference([1], [1, 2]) == \
        'the value has 1 items in the cache and 2 in this run'


def test_a_teacher_file_is_required_and_out_must_be_new(setup, tmp_path):
    cfg = copy.deepcopy(setup['cfg'])
    cfg.model.teacher_ckpt = None
    with pytest.raises(ValueError, match='teacher_ckpt is None'):
        build_teacher_cache(cfg, str(tmp_path / 'x'))
    with pytest.raises(FileExistsError, match='exists'):
        build_teacher_cache(setup['cfg'], setup['cache'])
    assert osp.isfile(osp.join(setup['cache'], MANIFEST))
