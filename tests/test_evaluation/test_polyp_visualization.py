"""Overlay drawing for polyp cases."""
import uuid

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmseg_kdas.visualization import (PolypLocalVisualizer, draw_polyp_panels,
                                      overlay_mask)
from mmseg_kdas.visualization.polyp_visualizer import _caption


def case(h=40, w=50):
    image = np.full((h, w, 3), 100, np.uint8)
    gt = np.zeros((h, w), bool)
    gt[10:30, 10:30] = True
    pred = np.zeros((h, w), bool)
    pred[10:30, 20:40] = True  # half of it on the ground truth
    return image, gt, pred


def test_overlay_keeps_the_image_outside_the_region():
    image, gt, _ = case()
    out = overlay_mask(image, gt, (0, 255, 0), alpha=0.25, thickness=0)
    assert (out[~gt] == 100).all()
    assert out[20, 20].tolist() == [75, 139, 75]  # 0.75 * 100 + 0.25 * c
    outlined = overlay_mask(image, gt, (0, 255, 0), alpha=0.25, thickness=1)
    assert outlined[10, 20].tolist() == [0, 255, 0]  # on the outline
    assert outlined[20, 20].tolist() == [75, 139, 75]
    assert (image == 100).all()  # input untouched


def test_three_panels():
    image, gt, pred = case()
    out = draw_polyp_panels(image, gt, pred, alpha=0.5, captions=False)
    gap = 2
    assert out.shape == (40, 3 * 50 + 2 * gap, 3)
    np.testing.assert_array_equal(out[:, :50], image)
    assert (out[:, 50:50 + gap] == 255).all()
    gt_panel = out[:, 50 + gap:100 + gap]
    pred_panel = out[:, 100 + 2 * gap:]
    assert gt_panel[20, 20].tolist() == [50, 178, 50]  # green tint
    assert (gt_panel[12:28, 12:28] == [50, 178, 50]).all()
    assert (gt_panel[:, 35:] == 100).all()
    assert pred_panel[20, 30].tolist() == [178, 50, 50]  # red tint
    assert pred_panel[20, 15].tolist() == [100, 100, 100]  # missed part
    assert pred_panel[10, 15].tolist() == [0, 255, 0]  # gt outline
    assert pred_panel[10, 35].tolist() == [255, 0, 0]  # pred outline
    only_image = draw_polyp_panels(image)
    assert only_image.shape == image.shape
    with pytest.raises(ValueError, match='gt'):
        draw_polyp_panels(image, gt[:20])


def _captioned(panel, text):
    out = panel.copy()
    _caption(out, text)
    return out


def test_captions_show_the_dice():
    image, gt, pred = case(200, 220)
    plain = draw_polyp_panels(image, gt, pred, captions=False)
    captioned = draw_polyp_panels(image, gt, pred)
    differs = np.nonzero((plain != captioned).any(axis=2))
    assert differs[0].max() < 30  # captions stay in the top band
    # the prediction panel reads its Dice: half of the prediction lies on
    # the ground truth of the same area, 2 * 200 / (400 + 400) = 0.5
    pred_panel = slice(2 * (220 + 2), None)  # after two panels and gaps
    np.testing.assert_array_equal(
        captioned[:, pred_panel],
        _captioned(plain[:, pred_panel], 'prediction (Dice 0.500)'))
    assert not np.array_equal(
        captioned[:, pred_panel],
        _captioned(plain[:, pred_panel], 'prediction (Dice 0.600)'))
    np.testing.assert_array_equal(captioned[:, :220],
                                  _captioned(plain[:, :220], 'image'))


def test_visualizer_draws_data_samples(tmp_path):
    image, gt, pred = case()
    vis = PolypLocalVisualizer(
        name=f'vis_{uuid.uuid4().hex}',
        vis_backends=[dict(type='LocalVisBackend')],
        save_dir=str(tmp_path))
    vis.dataset_meta = dict(
        classes=('background', 'polyp'), palette=[[0, 0, 0], [0, 0, 255]])
    sample = SegDataSample(
        gt_sem_seg=PixelData(data=torch.from_numpy(gt)[None].long()),
        pred_sem_seg=PixelData(data=torch.from_numpy(pred)[None].float()))
    out_file = str(tmp_path / 'case.png')
    vis.add_datasample('case', image, sample, out_file=out_file)
    drawn = vis.get_image()
    assert drawn.shape == (40, 154, 3)
    # the prediction takes the palette's polyp colour (blue here)
    assert drawn[25, 104 + 30].tolist() == [65, 65, 154]
    vis.add_datasample('case', image, sample, draw_gt=False)
    assert vis.get_image().shape == (40, 102, 3)
