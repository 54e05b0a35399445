"""Regenerate ``polyp_pvt_fingerprint.pt`` from the authors' Polyp-PVT code.

    python tests/data/make_polyp_pvt_fingerprint.py POLYP_PVT_DIR \
        [--out tests/data/polyp_pvt_fingerprint.pt] [--compare FILE]

``POLYP_PVT_DIR`` is a checkout of https://github.com/DengPingFan/Polyp-PVT
(its ``lib/pvt.py`` and ``lib/pvtv2.py``); this script downloads nothing,
is not run by the tests, and no code of that repository is kept here.

For each of B2 (the authors' ``PolypPVT``) and B0 (the same decoder on
``pvt_v2_b0``, as in the KDAS student: the B0 widths in the translayers and
the channel attention), it builds the authors' model, loads the seeded
weights of :func:`polyp_pvt_helpers.reference_state_dict` (authors' key
layout) strictly, and stores ``P1`` and ``P2`` of ``model.eval()`` for the
seeded 1x3x64x64 input: ``{'b0': {'p1', 'p2'}, 'b2': {...}}``. With
``--compare`` it also prints the largest difference to an existing file.

The authors' ``PolypPVT.__init__`` loads ``./pretrained_pth/pvt_v2_b2.pth``
(replaced by the seeded weights right after); that load is answered with
an empty state dict. Their ``lib/pvtv2.py`` imports timm; if timm is not
installed, a stand-in with the five names it uses (``DropPath``,
``to_2tuple``, ``trunc_normal_``, ``register_model``, ``_cfg``) is
provided. ``DropPath`` is the identity in eval mode, and the initialiser
does not matter: every weight is loaded.
"""
import argparse
import os.path as osp
import sys
import types
from contextlib import contextmanager
from typing import Dict, Iterator

import torch
import torch.nn as nn

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from polyp_pvt_helpers import FINGERPRINT, reference_state_dict  # noqa: E402

B0_CHANNELS = [32, 64, 160, 256]


def _timm_stand_in() -> None:
    """Provide the names ``lib/pvtv2.py`` imports from timm."""
    try:
        import timm.models.layers  # noqa: F401
        import timm.models.registry  # noqa: F401
        import timm.models.vision_transformer  # noqa: F401
        return
    except ImportError:
        pass

    class DropPath(nn.Module):
        """Identity in eval mode, where the fingerprint is taken."""

        def __init__(self, drop_prob=0.):
            super().__init__()
            self.drop_prob = drop_prob

        def forward(self, x):
            if self.training and self.drop_prob > 0:
                raise RuntimeError('stand-in DropPath: eval mode only')
            return x

    layers = types.ModuleType('timm.models.layers')
    layers.DropPath = DropPath
    layers.to_2tuple = lambda x: x if isinstance(x, tuple) else (x, x)
    layers.trunc_normal_ = nn.init.trunc_normal_
    registry = types.ModuleType('timm.models.registry')
    registry.register_model = lambda fn: fn
    vit = types.ModuleType('timm.models.vision_transformer')
    vit._cfg = lambda **kwargs: kwargs
    for name, module in (('timm', types.ModuleType('timm')),
                         ('timm.models', types.ModuleType('timm.models')),
                         ('timm.models.layers', layers),
                         ('timm.models.registry', registry),
                         ('timm.models.vision_transformer', vit)):
        sys.modules[name] = module


@contextmanager
def _no_pretrained_file() -> Iterator[None]:
    """``torch.load`` of ``pvt_v2_b*.pth`` gives an empty state dict."""
    load = torch.load

    def fake_load(path, *args, **kwargs):
        if str(path).endswith(('pvt_v2_b2.pth', 'pvt_v2_b0.pth')):
            return {}
        return load(path, *args, **kwargs)

    torch.load = fake_load
    try:
        yield
    finally:
        torch.load = load


def build_authors_model(arch: str) -> nn.Module:
    """The authors' ``PolypPVT`` (B2), or the same decoder on B0."""
    from lib import pvt, pvtv2
    with _no_pretrained_file():
        model = pvt.PolypPVT()
    if arch == 'b0':
        c1, c2, c3, c4 = B0_CHANNELS
        model.backbone = pvtv2.pvt_v2_b0()
        model.Translayer2_0 = pvt.BasicConv2d(c1, 32, 1)
        model.Translayer2_1 = pvt.BasicConv2d(c2, 32, 1)
        model.Translayer3_1 = pvt.BasicConv2d(c3, 32, 1)
        model.Translayer4_1 = pvt.BasicConv2d(c4, 32, 1)
        model.ca = pvt.ChannelAttention(c1)
    return model


def fingerprint(arch: str) -> Dict[str, torch.Tensor]:
    """P1 and P2 of the authors' model for the seeded weights and input."""
    model = build_authors_model(arch)
    state_dict, image = reference_state_dict(arch, seed=0)
    model.load_state_dict(state_dict, strict=True)
    with torch.no_grad():
        p1, p2 = model.eval()(image)
    return dict(p1=p1.contiguous(), p2=p2.contiguous())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('polyp_pvt_dir', help="checkout of the authors' code")
    parser.add_argument('--out', default=FINGERPRINT, help='output file')
    parser.add_argument(
        '--compare', help='print the largest difference to this file')
    args = parser.parse_args(argv)
    if not osp.isfile(osp.join(args.polyp_pvt_dir, 'lib', 'pvt.py')):
        parser.error(f'{args.polyp_pvt_dir} has no lib/pvt.py')
    sys.path.insert(0, osp.abspath(args.polyp_pvt_dir))
    _timm_stand_in()
    torch.set_grad_enabled(False)
    result = {arch: fingerprint(arch) for arch in ('b0', 'b2')}
    if args.compare:
        old = torch.load(args.compare, weights_only=True)
        for arch, outputs in result.items():
            for key, value in outputs.items():
                diff = (value - old[arch][key]).abs().max().item()
                print(f'{arch} {key}: max |new - {args.compare}| = {diff:.3g}')
    torch.save(result, args.out)
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
