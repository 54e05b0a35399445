"""Key mapping from the authors' checkpoints to mmseg_kdas models.

Two kinds of files come from the authors:

* PVTv2 ImageNet classifiers (``pvt_v2_b0.pth`` ... ``pvt_v2_b5.pth``): the
  backbone's parameter names are the official ones, so these load as they
  are once the classification ``head`` is dropped
  (:func:`~mmseg_kdas.models.backbones.pvtv2.load_pvtv2_pretrained`, used
  by ``PVTv2.init_weights``).
* Whole Polyp-PVT models (``PolypPVT.pth`` on PVTv2-B2, the KDAS distilled
  student on PVTv2-B0): converted by :func:`convert_polyp_pvt` into the
  state dict of an mmseg ``EncoderDecoder(PVTv2, PolypPVTHead)``. The
  mapping is a table of key prefixes (:data:`POLYP_PVT_PREFIXES`).

The converters depend on the models (they check a conversion against a
freshly built ``PVTv2`` + ``PolypPVTHead``), never the other way round: the
models read their files with :mod:`mmseg_kdas.utils.checkpoint_file`.
"""
import re
from collections import OrderedDict
from typing import List, Tuple

from mmseg_kdas.utils.checkpoint_file import StateDict
from ..backbones.pvtv2 import PVTv2
from ..decode_heads.polyp_pvt_head import PolypPVTHead

#: Reference (Polyp-PVT / KDAS) key prefix -> mmseg_kdas key prefix.
POLYP_PVT_PREFIXES: Tuple[Tuple[str, str], ...] = (
    ('backbone.', 'backbone.'),
    ('ca.', 'decode_head.cim.channel_attn.'),
    ('sa.conv1.', 'decode_head.cim.spatial_attn.conv.'),
    ('Translayer2_0.', 'decode_head.cim_conv.'),
    ('Translayer2_1.', 'decode_head.lateral_convs.0.'),
    ('Translayer3_1.', 'decode_head.lateral_convs.1.'),
    ('Translayer4_1.', 'decode_head.lateral_convs.2.'),
    ('CFM.', 'decode_head.cfm.'),
    ('SAM.', 'decode_head.sam.'),
    ('out_CFM.', 'decode_head.cls_cfm.'),
    ('out_SAM.', 'decode_head.cls_sam.'),
)


def polyp_pvt_convert(state_dict: StateDict) -> StateDict:
    """Rename reference Polyp-PVT keys to mmseg_kdas keys.

    Args:
        state_dict (dict[str, Tensor]): A reference Polyp-PVT or KDAS model
            state dict (keys such as ``backbone.block1.0.attn.q.weight``,
            ``Translayer2_0.conv.weight``, ``CFM.conv4.bn.bias``).

    Returns:
        dict[str, Tensor]: The same tensors under mmseg keys, in order.

    Raises:
        KeyError: Listing every key that no prefix of
            :data:`POLYP_PVT_PREFIXES` matches.
    """
    converted = OrderedDict()
    unknown = []
    for key, value in state_dict.items():
        for old, new in POLYP_PVT_PREFIXES:
            if key.startswith(old):
                converted[new + key[len(old):]] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise KeyError(f'not Polyp-PVT keys (no known prefix): {unknown}')
    return converted


def infer_pvtv2_arch(state_dict: StateDict, prefix: str = '') -> str:
    """Name the PVTv2 variant (``'b0'`` ... ``'b5'``) of some weights.

    Widths, depths and MLP ratios are read from the tensor shapes; head
    counts are not visible in weights and are taken as the variant's.

    Args:
        state_dict (dict[str, Tensor]): Weights holding a PVTv2.
        prefix (str): Prefix of the backbone keys, e.g. ``'backbone.'``.

    Returns:
        str: The arch name.

    Raises:
        KeyError: If a stage's patch embedding is missing.
        ValueError: If the shapes fit no known variant.
    """
    dims, depths, mlp_ratios = [], [], []
    for stage in range(1, 5):
        key = f'{prefix}patch_embed{stage}.proj.weight'
        if key not in state_dict:
            raise KeyError(f'no PVTv2 stage {stage}: key {key!r} missing')
        dims.append(state_dict[key].shape[0])
        block = re.compile(rf'^{re.escape(prefix)}block{stage}\.(\d+)\.')
        indices = {
            int(m.group(1))
            for m in map(block.match, state_dict) if m is not None
        }
        depths.append(len(indices))
        fc1 = state_dict.get(f'{prefix}block{stage}.0.mlp.fc1.weight')
        mlp_ratios.append(fc1.shape[0] // dims[-1] if fc1 is not None else 0)
    for name, setting in PVTv2.arch_settings.items():
        if (setting['embed_dims'] == dims and setting['depths'] == depths
                and setting['mlp_ratios'] == mlp_ratios):
            return name
    raise ValueError(f'PVTv2 shapes fit no known arch: embed_dims {dims}, '
                     f'depths {depths}, mlp_ratios {mlp_ratios}')


def _to_reference(key: str) -> str:
    """The reference name of an mmseg_kdas key (inverse prefix table)."""
    for old, new in POLYP_PVT_PREFIXES:
        if key.startswith(new):
            return old + key[len(new):]
    return key


def _diff(expected: StateDict, actual: StateDict) -> List[str]:
    """Missing, unexpected and mis-shaped keys, in reference names."""
    problems = []
    missing = [_to_reference(k) for k in expected if k not in actual]
    unexpected = [_to_reference(k) for k in actual if k not in expected]
    mismatched = [
        f'{_to_reference(k)}: {tuple(actual[k].shape)} vs '
        f'{tuple(v.shape)}' for k, v in expected.items()
        if k in actual and actual[k].shape != v.shape
    ]
    if missing:
        problems.append(f'missing keys: {missing}')
    if unexpected:
        problems.append(f'unexpected keys: {unexpected}')
    if mismatched:
        problems.append(f'shape mismatches (checkpoint vs model): '
                        f'{mismatched}')
    return problems


def convert_polyp_pvt(state_dict: StateDict) -> Tuple[StateDict, str]:
    """Convert and check a whole reference Polyp-PVT / KDAS model.

    The PVTv2 variant is detected from the shapes; the converted keys and
    shapes are then compared with those of a freshly built
    ``PVTv2(arch)`` + ``PolypPVTHead`` of that variant.

    Args:
        state_dict (dict[str, Tensor]): Reference model state dict (see
            :func:`~mmseg_kdas.utils.checkpoint_file.load_state_dict_file`).

    Returns:
        tuple[dict[str, Tensor], str]: The mmseg state dict and the arch
        (``'b2'`` for the Polyp-PVT teacher, ``'b0'`` for the student).

    Raises:
        ValueError: For an ImageNet or already-converted file, or for any
            missing, unexpected or mis-shaped key (all are listed, under
            their reference names).
    """
    if any(k.startswith('decode_head.') for k in state_dict):
        raise ValueError('the checkpoint is already in mmseg format '
                         '(decode_head.* keys): load it as it is')
    if 'patch_embed1.proj.weight' in state_dict:
        raise ValueError(
            'this is a PVTv2 ImageNet file, not a Polyp-PVT model: load it '
            'with backbone init_cfg=dict(type=\'Pretrained\', checkpoint=...)')
    converted = polyp_pvt_convert(state_dict)
    arch = infer_pvtv2_arch(converted, prefix='backbone.')
    backbone = PVTv2(arch=arch)
    head = PolypPVTHead(in_channels=backbone.embed_dims)
    expected = OrderedDict()
    for prefix, module in (('backbone.', backbone), ('decode_head.', head)):
        expected.update(
            (prefix + k, v) for k, v in module.state_dict().items())
    problems = _diff(expected, converted)
    if problems:
        raise ValueError(f'Polyp-PVT checkpoint (PVTv2-{arch}) does not '
                         f'convert cleanly: ' + '; '.join(problems))
    return OrderedDict((k, converted[k]) for k in expected), arch
