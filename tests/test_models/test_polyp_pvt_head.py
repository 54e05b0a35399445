"""PolypPVTHead and the Polyp-PVT segmentors: sizes, values, losses."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from polyp_pvt_helpers import (FINGERPRINT, NUM_PARAMS, build_polyp_pvt,
                               reference_state_dict)

from mmseg_kdas.models.decode_heads import PolypPVTHead
from mmseg_kdas.models.decode_heads.polyp_pvt_head import SAM
from mmseg_kdas.models.losses import structure_loss
from mmseg_kdas.models.utils import convert_polyp_pvt


@pytest.fixture(scope='module')
def b0_model():
    model = build_polyp_pvt('b0')
    state_dict, image = reference_state_dict('b0', seed=0)
    converted, arch = convert_polyp_pvt(state_dict)
    assert arch == 'b0'
    model.load_state_dict(converted, strict=True)
    return model.eval(), image


@pytest.mark.parametrize('arch', ['b0', 'b2'])
def test_parameter_count_matches_reference(arch):
    model = build_polyp_pvt(arch)
    assert sum(p.numel() for p in model.parameters()) == NUM_PARAMS[arch]
    assert not any('conv_seg' in k for k in model.state_dict())


@pytest.mark.parametrize('arch', ['b0', 'b2'])
def test_outputs_match_authors_code(arch):
    """P1, P2 of the authors' code for the seeded weights (fingerprint)."""
    expected = torch.load(FINGERPRINT, weights_only=True)[arch]
    model = build_polyp_pvt(arch)
    state_dict, image = reference_state_dict(arch, seed=0)
    model.load_state_dict(convert_polyp_pvt(state_dict)[0], strict=True)
    with torch.no_grad():
        p1, p2 = model.eval()(image, mode='tensor')
    # The README's level: 0 on the machine that wrote the file (regenerate
    # it with tests/data/make_polyp_pvt_fingerprint.py), float32 rounding
    # of other CPUs / BLAS builds (up to 7e-6; 1.08e-5 on an AVX2-only AMD
    # EPYC) elsewhere; a LayerNorm eps of 1e-5 instead of 1e-6 already
    # moves the outputs by up to 2e-5.
    torch.testing.assert_close(p1, expected['p1'], atol=1.5e-5, rtol=0)
    torch.testing.assert_close(p2, expected['p2'], atol=1.5e-5, rtol=0)
    assert p1.abs().max() > 0.1  # the check is not vacuous


def test_predict_fuses_p1_p2_and_resizes(b0_model):
    model, image = b0_model
    with torch.no_grad():
        p1, p2 = model(image, mode='tensor')
        sample = SegDataSample(
            metainfo=dict(
                img_shape=(64, 64),
                pad_shape=(64, 64),
                ori_shape=(40, 50),
                padding_size=[0, 0, 0, 0]))
        result = model.predict(image, [sample])[0]
    expected = F.interpolate(
        p1 + p2, size=(40, 50), mode='bilinear', align_corners=False)
    # mmseg stores sigmoid probabilities for 1-channel heads
    torch.testing.assert_close(result.seg_logits.data,
                               expected[0].sigmoid())
    torch.testing.assert_close(result.pred_sem_seg.data,
                               (expected[0].sigmoid() > 0.5).float())


def test_loss_is_deep_supervision(b0_model):
    model, image = b0_model
    label = (torch.rand(1, 64, 64) > 0.5).long()
    label[:, :4] = 255
    sample = SegDataSample(
        metainfo=dict(img_shape=(64, 64), pad_shape=(64, 64)),
        gt_sem_seg=PixelData(data=label))
    with torch.no_grad():
        p1, p2 = model(image, mode='tensor')
        losses = model(image, [sample], mode='loss')
    assert set(losses) == {
        'decode.loss_structure_p1', 'decode.loss_structure_p2',
        'decode.acc_seg'
    }
    torch.testing.assert_close(losses['decode.loss_structure_p1'],
                               structure_loss(p1, label))
    torch.testing.assert_close(losses['decode.loss_structure_p2'],
                               structure_loss(p2, label))
    valid = label != 255
    pred = ((p1 + p2).sigmoid()[:, 0] > 0.5).long()
    acc = (pred == label)[valid].float().mean() * 100
    torch.testing.assert_close(losses['decode.acc_seg'], acc)


def test_two_losses_are_each_applied_to_both_maps():
    head = PolypPVTHead(
        in_channels=[32, 64, 160, 256],
        loss_decode=[
            dict(type='StructureLoss', loss_name='loss_a'),
            dict(type='StructureLoss', loss_name='loss_b', loss_weight=2.)
        ])
    logits = [torch.zeros(1, 1, 1, 2), torch.zeros(1, 1, 1, 2)]
    sample = SegDataSample(gt_sem_seg=PixelData(data=torch.tensor([[[1,
                                                                     0]]])))
    losses = head.loss_by_feat(logits, [sample])
    assert {'loss_a_p1', 'loss_a_p2', 'loss_b_p1',
            'loss_b_p2'} <= set(losses)
    torch.testing.assert_close(losses['loss_b_p2'], 2 * losses['loss_a_p1'])


def test_train_step_updates_weights():
    model = build_polyp_pvt('b0')
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    img = torch.rand(2, 3, 64, 64) * 255
    label = torch.zeros(1, 64, 64, dtype=torch.long)
    label[:, 20:40, 20:40] = 1
    samples = [
        SegDataSample(
            metainfo=dict(img_shape=(64, 64), pad_shape=(64, 64)),
            gt_sem_seg=PixelData(data=label)) for _ in range(2)
    ]
    data = model.data_preprocessor(
        dict(inputs=list(img), data_samples=samples), False)
    before = model.decode_head.cls_sam.weight.detach().clone()
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert not torch.equal(before, model.decode_head.cls_sam.weight)


def test_sam_keeps_softmax_channel_one():
    torch.manual_seed(0)
    sam = SAM(channels=8, state_channels=4, grid=2).eval()
    x, guide = torch.randn(1, 8, 8, 8), torch.randn(1, 8, 8, 8)
    out = sam(x, guide)
    # adding the same value to every guide channel changes no softmax
    torch.testing.assert_close(sam(x, guide + 3.), out)
    # only channel 1 of the softmax matters: a guide with the same
    # channel-1 probability gives the same output
    prob1 = torch.softmax(guide, dim=1)[:, 1:2]
    other = torch.zeros_like(guide)
    other[:, 1:2] = torch.log(prob1 / (1 - prob1) * 7)
    torch.testing.assert_close(sam(x, other), out, atol=1e-5, rtol=1e-5)


def test_bad_configuration_and_sizes_raise():
    with pytest.raises(ValueError, match='num_classes=2'):
        PolypPVTHead(in_channels=[32, 64, 160, 256], num_classes=3)
    with pytest.raises(ValueError, match='4 stages'):
        PolypPVTHead(in_channels=[32, 64, 160])
    head = PolypPVTHead(in_channels=[32, 64, 160, 256])
    feats = [
        torch.rand(1, c, s, s)
        for c, s in zip([32, 64, 160, 256], [12, 6, 3, 2])
    ]
    with pytest.raises(ValueError, match='multiple of 32'):
        head(feats)
