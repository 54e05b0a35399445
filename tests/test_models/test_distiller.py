import copy

import pytest
import torch
from kdas_helpers import build_distiller, make_batch, tiny_list_model
from mmengine.optim import DefaultOptimWrapperConstructor, build_optim_wrapper
from mmseg.registry import MODELS

from mmseg_kdas.models.distillers import KDASDistiller, load_teacher_weights
from mmseg_kdas.models.losses import AttentionSupervisionLoss
from mmseg_kdas.testing import check_segmentor, tiny_segformer

OPTIM = dict(
    optimizer=dict(type='SGD', lr=0.5, momentum=0.9),
    constructor='KDASOptimWrapperConstructor')


def _preprocessed(model, seed=0, size=(32, 32)):
    data = model.data_preprocessor(make_batch(2, size, seed=seed), True)
    return data['inputs'], data['data_samples']


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _grad_norm(module):
    return sum(p.grad.abs().sum().item() for p in module.parameters()
               if p.grad is not None)


def test_registered():
    assert MODELS.get('KDASDistiller') is KDASDistiller


def test_all_modes_with_the_shared_segmentor_check():
    result = check_segmentor(
        dict(
            type='KDASDistiller',
            teacher=tiny_segformer(16),
            student=tiny_segformer(8),
            at_pairs=[dict(student=0, teacher=0)]),
        img_size=(64, 64))
    assert {'loss_at_0', 'loss_sgm_0'} <= set(result['losses'])
    assert all(p.grad is None for p in result['model'].teacher.parameters())


def test_train_step_leaves_teacher_unchanged_and_without_gradients():
    torch.manual_seed(0)
    model = build_distiller()
    model.train()
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(OPTIM))
    teacher_before = _state(model.teacher)
    student_before = _state(model.student)
    for seed in range(2):
        log_vars = model.train_step(
            make_batch(2, (32, 32), seed=seed), optim_wrapper)
        assert {'loss', 'seg.decode.loss_ce', 'loss_at_0', 'loss_at_1',
                'loss_sgm_0'} <= set(log_vars)
    for key, value in model.teacher.state_dict().items():
        # parameters and BatchNorm statistics alike
        assert torch.equal(value, teacher_before[key]), key
    assert all(p.grad is None and not p.requires_grad
               for p in model.teacher.parameters())
    changed = [
        k for k, v in model.student.state_dict().items()
        if not torch.equal(v, student_before[k])
    ]
    assert any(k.startswith('backbone.') for k in changed)
    assert any(k.startswith('decode_head.') for k in changed)


def test_optimizer_holds_no_teacher_parameter():
    model = build_distiller(sgm_pairs=[
        dict(
            student='backbone:3',
            teacher='backbone:3',
            neck=dict(
                type='SGMNeck',
                embedding='gram',
                student_channels=64,
                teacher_channels=128))
    ])
    teacher_ids = {id(p) for p in model.teacher.parameters()}
    trainable_ids = {
        id(p)
        for name, p in model.named_parameters()
        if not name.startswith('teacher.')
    }
    # mmengine's default constructor hands the teacher to the optimizer
    default = DefaultOptimWrapperConstructor(
        dict(optimizer=dict(type='SGD', lr=0.1)))(model)
    default_ids = {
        id(p)
        for group in default.optimizer.param_groups for p in group['params']
    }
    assert teacher_ids <= default_ids

    for paramwise_cfg in (None,
                          dict(custom_keys={
                              'student.backbone': dict(lr_mult=0.1)
                          })):
        cfg = copy.deepcopy(OPTIM)
        if paramwise_cfg is not None:
            cfg['paramwise_cfg'] = paramwise_cfg
        optim_wrapper = build_optim_wrapper(model, cfg)
        groups = optim_wrapper.optimizer.param_groups
        ids = {id(p) for group in groups for p in group['params']}
        assert ids == trainable_ids  # student and SGM adapter, no teacher
        assert not ids & teacher_ids
    # a model without teacher (the student alone) keeps all its parameters
    alone = build_optim_wrapper(model.student, copy.deepcopy(OPTIM))
    assert sum(len(g['params']) for g in alone.optimizer.param_groups) == len(
        list(model.student.parameters()))
    backbone_ids = {id(p) for p in model.student.backbone.parameters()}
    for group in groups:
        expected = 0.05 if id(group['params'][0]) in backbone_ids else 0.5
        assert group['lr'] == pytest.approx(expected)


def test_teacher_is_wholly_in_eval_mode():
    model = build_distiller(
        teacher=tiny_list_model(16, dropout_ratio=0.5, drop_path_rate=0.5))
    model.train()
    assert model.training and model.student.training
    assert not any(m.training for m in model.teacher.modules())
    inputs, samples = _preprocessed(model)
    # dropout and drop-path off: the teacher is deterministic
    first = model._teacher_maps(inputs, samples)
    second = model._teacher_maps(inputs, samples)
    assert first and first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_teacher_forward_records_no_graph():
    # Frozen weights and plain inputs never need grad, so only an input
    # that requires grad shows whether the teacher runs under no_grad.
    model = build_distiller()
    model.train()
    inputs, samples = _preprocessed(model)
    inputs.requires_grad_(True)
    out = model._teacher_maps(inputs, samples).values()
    assert out and not any(t.requires_grad or t.grad_fn is not None
                           for t in out)
    # and so it is inside loss(): the teacher maps of the pairs carry none
    seen = []
    model.loss_at.forward = lambda s, t: seen.append(t) or s.mean()
    model.loss(inputs, _preprocessed(model)[1])
    assert seen and all(t.grad_fn is None for t in seen)


def test_loss_values_follow_the_kdas_formula():
    torch.manual_seed(0)
    model = build_distiller(alpha=0.3, at_weight=0.7, sgm_weight=2.0)
    model.train()
    inputs, samples = _preprocessed(model)
    losses = model.loss(inputs, samples)
    assert set(losses) == {
        'seg.decode.loss_ce', 'seg.decode.acc_seg', 'loss_at_0', 'loss_at_1',
        'loss_sgm_0'
    }

    student_losses = model.student.loss(inputs, samples)
    assert torch.allclose(losses['seg.decode.loss_ce'],
                          0.7 * student_losses['decode.loss_ce'])
    assert torch.equal(losses['seg.decode.acc_seg'],
                       student_losses['decode.acc_seg'])

    student_out = model.student._forward(inputs)
    teacher_out = model.teacher._forward(inputs)
    at = AttentionSupervisionLoss(temperature=2.0)
    for i in range(2):
        expected = 0.3 * 0.7 * at(student_out[i], teacher_out[i])
        assert torch.allclose(losses[f'loss_at_{i}'], expected)
    s, t = student_out[0].squeeze(1), teacher_out[0].squeeze(1)
    expected = 0.3 * 2.0 * ((s + s.transpose(1, 2)) -
                            (t + t.transpose(1, 2))).pow(2).mean()
    assert torch.allclose(losses['loss_sgm_0'], expected)

    model.kd_multiplier = 0.5
    halved = model.loss(inputs, samples)
    for key in ('loss_at_0', 'loss_at_1', 'loss_sgm_0'):
        assert torch.allclose(halved[key], 0.5 * losses[key])
    assert torch.allclose(halved['seg.decode.loss_ce'],
                          losses['seg.decode.loss_ce'])


@pytest.mark.parametrize('term', ['at', 'sgm'])
def test_each_distillation_term_alone_trains_the_student(term):
    torch.manual_seed(0)
    model = build_distiller(
        alpha=1.0,
        at_weight=1.0 if term == 'at' else 0.0,
        sgm_weight=1.0 if term == 'sgm' else 0.0)
    model.train()
    inputs, samples = _preprocessed(model)
    losses = model.loss(inputs, samples)
    assert {k for k in losses if k.startswith('loss_')} == (
        {'loss_at_0', 'loss_at_1'} if term == 'at' else {'loss_sgm_0'})
    total, _ = model.parse_losses(losses)
    total.backward()
    # alpha = 1: the segmentation loss is multiplied by 0
    assert losses['seg.decode.loss_ce'].item() == 0
    assert _grad_norm(model.student.backbone) > 0
    assert _grad_norm(model.student.decode_head) > 0
    assert all(p.grad is None for p in model.teacher.parameters())


def test_module_sources_feature_distillation_with_adapter():
    torch.manual_seed(0)
    model = build_distiller(
        teacher=tiny_segformer(16),
        student=tiny_segformer(8),
        alpha=1.0,
        at_pairs=[dict(student='decode_head.conv_seg', teacher=0)],
        sgm_pairs=[
            dict(
                student='backbone:3',
                teacher='backbone:3',
                neck=dict(
                    type='SGMNeck',
                    embedding='covariance',
                    student_channels=64,
                    teacher_channels=128))
        ])
    model.train()
    # 64 px: the last stage is 2x2, so its covariance is not zero
    inputs, samples = _preprocessed(model, size=(64, 64))
    losses = model.loss(inputs, samples)
    assert losses['loss_at_0'].item() > 0
    assert losses['loss_sgm_0'].item() > 0
    total, _ = model.parse_losses(losses)
    total.backward()
    assert _grad_norm(model.sgm_necks[0].adapter) > 0
    assert _grad_norm(model.student.backbone) > 0
    assert all(p.grad is None for p in model.teacher.parameters())
    # the recorded features are released after the step
    assert not model._student_records and not model._teacher_records


def test_bad_sources_are_errors():
    with pytest.raises(KeyError, match='backbone.nowhere'):
        build_distiller(at_pairs=[dict(student='backbone.nowhere', teacher=0)])
    with pytest.raises(ValueError, match='>= 0'):
        build_distiller(at_pairs=[dict(student=-1, teacher=0)])
    with pytest.raises(ValueError, match='keys student and teacher'):
        build_distiller(at_pairs=[(0, 0)])
    with pytest.raises(ValueError, match='unknown keys'):
        build_distiller(at_pairs=[dict(student=0, teacher=0, neck=None)])

    model = build_distiller(at_pairs=[dict(student=2, teacher=0)])
    inputs, samples = _preprocessed(model)
    with pytest.raises(IndexError, match='only 2 items'):
        model.loss(inputs, samples)
    model = build_distiller(
        teacher=tiny_segformer(16),
        student=tiny_segformer(8),
        at_pairs=[dict(student=0, teacher=1)],
        sgm_weight=0)
    with pytest.raises(IndexError, match='one tensor'):
        model.loss(inputs, samples)
    model = build_distiller(
        at_pairs=[dict(student='backbone', teacher='backbone:0')],
        sgm_weight=0)
    with pytest.raises(TypeError, match="'backbone:<index>'"):
        model.loss(inputs, samples)
    with pytest.raises(ValueError, match='alpha'):
        build_distiller(alpha=1.5)


def test_teacher_checkpoint_loading(tmp_path):
    torch.manual_seed(1)
    teacher = MODELS.build(tiny_list_model(16))
    path = str(tmp_path / 'teacher.pth')
    torch.save(dict(state_dict=teacher.state_dict(), meta=dict()), path)

    model = build_distiller(teacher_ckpt=path)
    model.init_weights()  # must not overwrite the loaded teacher
    for key, value in teacher.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[key], value), key

    state = teacher.state_dict()
    state.pop('decode_head.conv_seg.weight')
    state['decode_head.extra.weight'] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(KeyError) as err:
        build_distiller(teacher_ckpt=path)
    assert 'decode_head.conv_seg.weight' in str(err.value)
    assert 'decode_head.extra.weight' in str(err.value)

    missing = str(tmp_path / 'nowhere.pth')
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        build_distiller(teacher_ckpt=missing)


def test_reference_polyp_pvt_teacher_checkpoint(tmp_path):
    from polyp_pvt_helpers import reference_state_dict
    state_dict, _ = reference_state_dict('b0')
    path = str(tmp_path / 'PolypPVT_b0.pth')
    torch.save(state_dict, path)
    teacher = dict(
        type='EncoderDecoder',
        backbone=dict(type='PVTv2', arch='b0'),
        decode_head=dict(
            type='PolypPVTHead',
            in_channels=[32, 64, 160, 256],
            channels=32,
            num_classes=2,
            out_channels=1,
            threshold=0.5,
            loss_decode=dict(type='StructureLoss')),
        test_cfg=dict(mode='whole'))
    model = build_distiller(teacher=teacher, teacher_ckpt=path)
    loaded = model.teacher.state_dict()
    assert torch.equal(loaded['decode_head.cls_sam.weight'],
                       state_dict['out_SAM.weight'])
    assert torch.equal(loaded['backbone.block1.0.attn.q.weight'],
                       state_dict['backbone.block1.0.attn.q.weight'])


def test_prediction_and_tensor_mode_use_the_student():
    model = build_distiller()
    model.eval()
    batch = make_batch(2, (32, 32))
    data = model.data_preprocessor(batch, False)
    out = model(**data, mode='tensor')
    expected = model.student(**data, mode='tensor')
    assert all(torch.equal(a, b) for a, b in zip(out, expected))
    results = model.val_step(batch)
    student_results = model.student.predict(data['inputs'],
                                            copy.deepcopy(
                                                data['data_samples']))
    for mine, theirs in zip(results, student_results):
        assert torch.equal(mine.seg_logits.data, theirs.seg_logits.data)
        assert mine.pred_sem_seg.data.shape == (1, 32, 32)


def test_preprocessing_of_teacher_and_student_must_agree():
    teacher = tiny_list_model(16)
    teacher['data_preprocessor']['mean'] = [0, 0, 0]
    with pytest.raises(ValueError, match='data_preprocessor.mean'):
        build_distiller(teacher=teacher)


# Every pair loss the distiller may run: KDAS's own and the baselines.
PAIR_LOSSES = [
    dict(type='AttentionSupervisionLoss', temperature=2.0),
    dict(type='PixelKDLoss', temperature=1.0),
    dict(type='ChannelWiseDivergence', temperature=1.0),
    dict(type='AttentionTransferLoss'),
]


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('loss_at', PAIR_LOSSES)
def test_distillation_terms_are_float32_under_autocast(dtype, loss_at):
    model = build_distiller(alpha=1.0, loss_at=loss_at)
    # a confident teacher on a 352x352 input: 88x88 logits of magnitude
    # 30 and more (P @ P.T overflows float16); the student's as autocast
    # gives them
    gen = torch.Generator().manual_seed(0)
    teacher = [-30 - 10 * torch.rand(2, 1, 88, 88, generator=gen)
               for _ in range(2)]
    for t in teacher:
        t[:, :, 20:60, 30:70] *= -1
    student = [torch.randn(2, 1, 88, 88, generator=gen).to(dtype)
               for _ in range(2)]
    teacher = {f'head:{i}': t.to(dtype) for i, t in enumerate(teacher)}
    expected = model._distillation_losses(
        [s.float() for s in student],
        {k: t.float() for k, t in teacher.items()})
    with torch.autocast('cpu', dtype=dtype):
        got = model._distillation_losses(student, teacher)
    name = model.loss_at.loss_name
    assert set(got) == {f'{name}_0', f'{name}_1', 'loss_sgm_0'}
    for key, value in got.items():
        assert value.dtype == torch.float32, key
        assert torch.isfinite(value), key
        assert value.item() == pytest.approx(
            expected[key].item(), rel=1e-3), key


def test_pairs_whose_maps_do_not_fit_name_the_pair_and_both_shapes():
    # channels: a 64-channel backbone stage against 1-channel logits
    model = build_distiller(
        at_pairs=[dict(student=0, teacher=0),
                  dict(student='backbone:3', teacher=1)],
        sgm_weight=0)
    model.train()
    inputs, samples = _preprocessed(model)
    with pytest.raises(ValueError) as err:
        model.loss(inputs, samples)
    message = str(err.value)
    assert 'at_pairs[1]' in message
    assert '(2, 64, 1, 1)' in message and '(2, 1, 32, 32)' in message
    # channels again, in an SGM pair without adapter
    model = build_distiller(
        at_weight=0,
        sgm_pairs=[dict(student=0, teacher=0),
                   dict(student='backbone:3', teacher='backbone:3',
                        neck=dict(type='SGMNeck', embedding='gram'))])
    model.train()
    with pytest.raises(ValueError) as err:
        model.loss(inputs, samples)
    message = str(err.value)
    assert 'sgm_pairs[1]' in message
    assert '(2, 64, 1, 1)' in message and '(2, 128, 1, 1)' in message
    # shapes: tokens (B, N, C) of the first MiT stage's norm, not a map
    model = build_distiller(
        at_pairs=[dict(student='backbone.layers.0.2', teacher=0)],
        loss_at=dict(type='PixelKDLoss'),
        sgm_weight=0)
    model.train()
    with pytest.raises(ValueError) as err:
        model.loss(inputs, samples)
    message = str(err.value)
    assert 'at_pairs[0]' in message
    assert '(2, 64, 8)' in message and '(2, 1, 32, 32)' in message


def test_teacher_checkpoint_of_another_variant(tmp_path):
    # the authors' B0 file (KDAS student) given for the B2 teacher
    from polyp_pvt_helpers import build_polyp_pvt, reference_state_dict
    state_dict, _ = reference_state_dict('b0')
    path = str(tmp_path / 'PolypPVT_b0.pth')
    torch.save(state_dict, path)
    teacher = build_polyp_pvt('b2')
    with pytest.raises(KeyError) as err:
        load_teacher_weights(teacher, path)
    message = str(err.value)
    assert path in message
    assert ('backbone.patch_embed1.proj.weight is (32, 3, 7, 7) in the file '
            'and (64, 3, 7, 7) in the teacher') in message
    assert 'missing keys: backbone.block1.2.' in message
