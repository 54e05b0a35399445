"""Batch-level multi-scale resizing and the preprocessor that builds it."""
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmseg_kdas.models import BatchMultiScaleResize, multiscale_size


def batch(n=2, size=(8, 8)):
    h, w = size
    inputs = torch.arange(n * 3 * h * w, dtype=torch.uint8).reshape(
        n, 3, h, w)
    samples = []
    for i in range(n):
        gt = torch.zeros(1, h, w, dtype=torch.int64)
        gt[0, :h // 2, :w // 2] = 1
        gt[0, -1, -1] = 255
        samples.append(
            SegDataSample(
                gt_sem_seg=PixelData(data=gt),
                metainfo=dict(img_shape=size, pad_shape=size,
                              ori_shape=size)))
    return inputs, samples


def test_reference_sizes():
    assert [multiscale_size((352, 352), r) for r in (0.75, 1, 1.25)] == \
        [(256, 256), (352, 352), (448, 448)]
    assert multiscale_size((64, 96), 0.1) == (32, 32)


def test_cycle_resizes_images_and_masks():
    aug = BatchMultiScaleResize(rates=(0.5, 1.0, 2.0), size_divisor=4,
                                mode='cycle')
    inputs, samples = batch()
    inputs = inputs.float()
    out, out_samples = aug(inputs.clone(), samples)
    assert tuple(out.shape) == (2, 3, 4, 4)
    assert out_samples[0].img_shape == (4, 4)
    assert out_samples[0].pad_shape == (4, 4)
    # bilinear with align_corners=True keeps the corner pixels
    assert torch.equal(out[:, :, 0, 0], inputs[:, :, 0, 0])
    assert torch.equal(out[:, :, -1, -1], inputs[:, :, -1, -1])
    gt = out_samples[0].gt_sem_seg.data
    assert gt.dtype == torch.int64
    assert gt[0].tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0],
                              [0, 0, 0, 0]]

    inputs, samples = batch()
    out, _ = aug(inputs.float(), samples)  # rate 1: unchanged
    assert torch.equal(out, inputs.float())
    inputs, samples = batch(size=(4, 4))
    out, out_samples = aug(inputs.float(), samples)  # rate 2, nearest x2
    assert tuple(out.shape[-2:]) == (8, 8)
    gt = out_samples[1].gt_sem_seg.data[0]
    assert gt[:4, :4].eq(1).all() and gt[6:, 6:].eq(255).all()
    assert gt.unique().tolist() == [0, 1, 255]


def test_random_mode_is_seeded_and_uses_every_rate():
    aug = BatchMultiScaleResize(rates=(0.75, 1.0, 1.25))
    torch.manual_seed(0)
    first = [aug.pick_rate() for _ in range(30)]
    torch.manual_seed(0)
    assert [aug.pick_rate() for _ in range(30)] == first
    assert set(first) == {0.75, 1.0, 1.25}


def test_bad_arguments():
    with pytest.raises(ValueError, match='rates'):
        BatchMultiScaleResize(rates=(0, 1))
    with pytest.raises(ValueError, match='mode'):
        BatchMultiScaleResize(mode='every')


def preprocessor_cfg(type_, **kwargs):
    return dict(
        type=type_,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        size=(8, 8),
        pad_val=0,
        seg_pad_val=255,
        **kwargs)


def test_preprocessor_builds_batch_augments_from_configs():
    init_default_scope('mmseg')
    augments = [
        dict(type='BatchMultiScaleResize', rates=(0.5, ), size_divisor=4)
    ]
    pre = MODELS.build(
        preprocessor_cfg(
            'BatchAugSegDataPreProcessor', batch_augments=augments))
    inputs, samples = batch()
    data = dict(inputs=list(inputs), data_samples=samples)
    out = pre(data, training=True)
    assert tuple(out['inputs'].shape) == (2, 3, 4, 4)
    assert tuple(out['data_samples'][0].gt_sem_seg.shape) == (4, 4)
    # normalisation happened before the resize
    assert out['inputs'].abs().max() < 3
    inputs, samples = batch()
    out = pre(dict(inputs=list(inputs), data_samples=samples), False)
    assert tuple(out['inputs'].shape) == (2, 3, 8, 8)  # not at test time

    # mmseg 1.2.2's own preprocessor keeps the list unbuilt and calls it
    plain = MODELS.build(
        preprocessor_cfg('SegDataPreProcessor', batch_augments=augments))
    inputs, samples = batch()
    with pytest.raises(TypeError, match='not callable'):
        plain(dict(inputs=list(inputs), data_samples=samples), True)


def test_training_step_with_multiscale_batches():
    from mmseg_kdas.testing import (check_segmentor, make_batch,
                                    tiny_binary_segformer)
    model = tiny_binary_segformer(
        preprocessor_cfg(
            'BatchAugSegDataPreProcessor',
            batch_augments=[
                dict(type='BatchMultiScaleResize', rates=(0.5, ),
                     size_divisor=32)
            ]))
    model['data_preprocessor']['size'] = (64, 64)
    out = check_segmentor(ConfigDict(model), img_size=(64, 64))
    pre = out['model'].data_preprocessor
    processed = pre(make_batch(img_size=(64, 64)), True)
    assert tuple(processed['inputs'].shape[-2:]) == (32, 32)
