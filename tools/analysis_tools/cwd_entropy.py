"""How peaked is the teacher's spatial softmax? Why CWD at T = 1 fails here.

    python tools/analysis_tools/cwd_entropy.py CONFIG CHECKPOINT DATA_ROOT
        [--split val] [--size 128] [--num-images 0]
        [--temperatures 1 4] [--out cwd_entropy.json]

Channel-wise distillation (CWD, Shu et al., ICCV 2021) turns every channel
of a logit map into a distribution over its ``H * W`` pixels,
``softmax(vec(z) / T)``, and matches student to teacher with a KL. On the
one-channel logit map of Polyp-PVT (``P1``, ``P2``; logits of magnitude
~30 for a trained teacher) at ``T = 1``, that distribution sits on the few
pixels of the largest logits: the student is asked to copy one peak. This
tool measures it on real images: for the teacher of ``CONFIG`` (a
segmentor, or a distiller's ``model.teacher``) with the weights of
``CHECKPOINT``, on the images of ``DATA_ROOT/TrainDataset`` of ``--split``
(default: the validation split) resized to ``--size``, for each map and
each temperature, averaged over the images:

- ``entropy``: the softmax's entropy divided by ``log(H * W)`` (1: uniform
  over the image, 0: a single pixel);
- ``support``: ``exp(entropy in nats) / (H * W)``, the share of the image
  the distribution effectively covers, next to ``polyp_share``, the share
  of the image the ground-truth polyp covers;
- ``polyp_mass``: the probability the distribution puts on the polyp.

``one-channel`` is CWD on the map as it is. ``two-channel`` is CWD on the
equivalent two-class logits ``[-z / 2, z / 2]`` (background, polyp; their
softmax over the channels is ``(1 - sigmoid(z), sigmoid(z))``): its polyp
channel is the one-channel softmax at ``2 T``, and its background channel
spreads over the background. Prints a markdown table and writes the
numbers to ``--out``.
"""
import argparse
import json
import math
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch import Tensor

from mmseg_kdas.datasets.pranet_split import PRANET_VAL_FILE
from mmseg_kdas.utils.atomic import atomic_write_text


def spatial_softmax(logits: Tensor, temperature: float) -> Tensor:
    """CWD's distribution of every channel over its pixels.

    Args:
        logits (Tensor): ``(B, C, H, W)``.
        temperature (float): ``T`` (> 0).

    Returns:
        Tensor: ``(B, C, H * W)``, each row summing to 1.
    """
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    return F.softmax(logits.flatten(2).double() / temperature, dim=2)


def two_channel(logits: Tensor) -> Tensor:
    """``[-z / 2, z / 2]``: a one-channel sigmoid logit as two classes.

    Args:
        logits (Tensor): ``(B, 1, H, W)``.

    Returns:
        Tensor: ``(B, 2, H, W)``, background then polyp; its softmax over
        the channels is ``(1 - sigmoid(z), sigmoid(z))``.
    """
    if logits.dim() != 4 or logits.shape[1] != 1:
        raise ValueError('two_channel expects (B, 1, H, W) logits, got '
                         f'{tuple(logits.shape)}')
    return torch.cat([-logits / 2, logits / 2], dim=1)


def softmax_stats(logits: Tensor, temperature: float,
                  mask: Optional[Tensor] = None) -> Dict[str, Tensor]:
    """Entropy, support and polyp mass of CWD's spatial softmax.

    Args:
        logits (Tensor): ``(B, C, H, W)``.
        temperature (float): ``T``.
        mask (Tensor, optional): ``(B, 1, H, W)`` ground truth, 1 = polyp.

    Returns:
        dict: ``entropy`` (divided by ``log(H * W)``), ``support``
        (``exp(entropy) / (H * W)``) and, with ``mask``, ``polyp_mass``;
        each a ``(B, C)`` tensor.
    """
    p = spatial_softmax(logits, temperature)
    n = p.shape[2]
    nats = -(p * torch.log(p.clamp_min(1e-300))).sum(dim=2)
    stats = dict(entropy=nats / math.log(n), support=nats.exp() / n)
    if mask is not None:
        polyp = (mask.flatten(2) > 0.5).double()
        stats['polyp_mass'] = (p * polyp).sum(dim=2)
    return stats


def map_stats(logits: Tensor, mask: Tensor,
              temperatures: Sequence[float]) -> Dict[str, List[float]]:
    """Per-image measures of one teacher map, every treatment and T.

    Args:
        logits (Tensor): ``(B, 1, H, W)`` teacher logits.
        mask (Tensor): ``(B, 1, H, W)`` ground truth (1 = polyp).
        temperatures: The temperatures.

    Returns:
        dict: ``{'<treatment>/<channel>/T=<T>/<measure>': [per image]}``,
        plus ``polyp_share`` and ``max_logit``.
    """
    out: Dict[str, List[float]] = {
        'polyp_share': (mask > 0.5).double().flatten(1).mean(1).tolist(),
        'max_logit': logits.flatten(1).max(1).values.tolist(),
    }
    treatments = {
        'one-channel': (logits, ['polyp']),
        'two-channel': (two_channel(logits), ['background', 'polyp']),
    }
    for name, (maps, channels) in treatments.items():
        for t in temperatures:
            stats = softmax_stats(maps, t, mask)
            for c, channel in enumerate(channels):
                for measure, values in stats.items():
                    key = f'{name}/{channel}/T={t:g}/{measure}'
                    out[key] = values[:, c].tolist()
    return out


def summarize(per_image: Dict[str, Dict[str, List[float]]]) -> dict:
    """Means over the images: ``{map: {key: mean}}``."""
    return {
        name: {k: sum(v) / len(v) for k, v in stats.items()}
        for name, stats in per_image.items()
    }


def format_table(means: dict, temperatures: Sequence[float]) -> str:
    """The means as a markdown table, one row per map, treatment, channel."""
    lines = [
        '| map | treatment | channel | T | entropy / log(HW) | support | '
        'polyp share | polyp mass |', '|---|---|---|---|---|---|---|---|'
    ]
    for name, stats in means.items():
        for treatment, channels in (('one-channel', ['polyp']),
                                    ('two-channel', ['background',
                                                     'polyp'])):
            for channel in channels:
                for t in temperatures:
                    key = f'{treatment}/{channel}/T={t:g}'
                    lines.append(
                        f'| {name} | {treatment} | {channel} | {t:g} | '
                        f'{stats[key + "/entropy"]:.3f} | '
                        f'{stats[key + "/support"]:.4f} | '
                        f'{stats["polyp_share"]:.4f} | '
                        f'{stats[key + "/polyp_mass"]:.3f} |')
    return '\n'.join(lines)


def build_teacher(config: str, checkpoint: str) -> torch.nn.Module:
    """The teacher segmentor of a config with the weights of a file."""
    from mmseg.registry import MODELS

    from mmseg_kdas.models.distillers import load_teacher_weights
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model_cfg = cfg.model.teacher if cfg.model.type == 'KDASDistiller' \
        else cfg.model
    if isinstance(model_cfg, str):
        model_cfg = Config.fromfile(model_cfg).model
    model = MODELS.build(model_cfg)
    load_teacher_weights(model, checkpoint)
    return model.eval()


def teacher_maps(model: torch.nn.Module, data_root: str, split: Optional[str],
                 size: int, num_images: int,
                 split_file: str = PRANET_VAL_FILE,
                 temperatures: Sequence[float] = (1.0, 4.0)) -> dict:
    """Run the teacher over the images; per-image measures per map.

    Returns:
        dict: ``{'P1': {...}, 'P2': {...}}`` of :func:`map_stats` lists.
    """
    from mmseg.registry import DATASETS
    dataset = DATASETS.build(
        dict(
            type='PolypDataset',
            data_root=data_root,
            data_prefix=dict(
                img_path='TrainDataset/images',
                seg_map_path='TrainDataset/masks'),
            split=split,
            split_file=split_file,
            test_mode=True,
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadPolypAnnotations'),
                dict(
                    type='Resize',
                    scale=(size, size),
                    keep_ratio=False,
                    backend='pillow'),
                dict(type='PackSegInputs'),
            ]))
    count = len(dataset) if num_images <= 0 else min(num_images,
                                                     len(dataset))
    per_image: Dict[str, Dict[str, List[float]]] = {}
    with torch.no_grad():
        for i in range(count):
            data = model.data_preprocessor(
                {
                    k: [v]
                    for k, v in dataset[i].items()
                }, False)
            outputs = model._forward(data['inputs'])
            if isinstance(outputs, Tensor):
                outputs = [outputs]
            mask = data['data_samples'][0].gt_sem_seg.data[None].float()
            for j, logits in enumerate(outputs):
                if logits.shape[1] != 1:
                    raise ValueError(f'output {j} has {logits.shape[1]} '
                                     'channels; expected 1-channel logits')
                m = F.interpolate(mask, size=logits.shape[2:],
                                  mode='nearest')
                stats = map_stats(logits.float(), m, temperatures)
                name = f'P{j + 1}'
                for k, v in stats.items():
                    per_image.setdefault(name, {}).setdefault(k, []).extend(
                        v)
    return per_image


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='teacher or distiller config')
    parser.add_argument('checkpoint', help='the teacher weights')
    parser.add_argument('data_root', help='PraNet-layout data folder')
    parser.add_argument(
        '--split',
        default='val',
        choices=['val', 'train-minus-val', 'all'],
        help='images of TrainDataset to use')
    parser.add_argument('--split-file', default=PRANET_VAL_FILE)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument(
        '--num-images', type=int, default=0, help='0: all of the split')
    parser.add_argument(
        '--temperatures', type=float, nargs='+', default=[1.0, 4.0])
    parser.add_argument('--out', default='cwd_entropy.json')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    model = build_teacher(args.config, args.checkpoint)
    split = None if args.split == 'all' else args.split
    per_image = teacher_maps(model, args.data_root, split, args.size,
                             args.num_images, args.split_file,
                             args.temperatures)
    means = summarize(per_image)
    table = format_table(means, args.temperatures)
    num = len(next(iter(per_image.values()))['polyp_share'])
    print(f'{num} images of {args.data_root} ({args.split}), '
          f'{args.size}x{args.size}, teacher {args.checkpoint}:\n')
    print(table)
    atomic_write_text(
        osp.abspath(args.out),
        json.dumps(
            dict(
                config=args.config,
                checkpoint=args.checkpoint,
                split=args.split,
                size=args.size,
                images=num,
                means=means,
                per_image=per_image),
            indent=1) + '\n')
    print(f'\nwrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
