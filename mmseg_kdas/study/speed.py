"""The plan's seconds, measured on this machine.

:func:`measure_speed` times a few training steps of the teacher and the
plain student of the study (their run configs, random weights, a random
batch of the study's size and batch) and their forward passes, on the
study's device and threads; :func:`machine_speed` keeps the figures in the
work dir (``speed.json``) for the next plan on the same machine. A study
config may give ``speed`` instead (a machine it cannot run on, e.g. the
GPU preset planned on a CPU).
"""
import argparse
import copy
import os
import os.path as osp
from typing import Dict

from .ledger import read_json, write_json
from .protocol import ProtocolError
from .runner import machine_description

SPEED_FILE = 'speed.json'
#: A KD step from the teacher cache against a plain student step (measured
#: by tools/analysis_tools/benchmark_kd_step.py: 1.03; rounded up for the
#: cache's reads).
KD_CACHED_RATIO = 1.1
#: Seconds per evaluated image besides the forward pass: reading the image
#: and mask at their original size, and the metric there (assumed).
EVAL_OVERHEAD = 0.1


def _step_seconds(cfg, batch_size: int, size: int, device,
                  steps: int) -> Dict[str, float]:
    """Seconds of a training step and of a forward pass at ``batch_size``
    and at batch 1, of the model of ``cfg``."""
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmseg.registry import MODELS

    from mmseg_kdas.testing import make_batch
    from mmseg_kdas.utils.benchmark import time_call

    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.data_preprocessor.pop('batch_augments', None)
    model = MODELS.build(model_cfg).to(device)
    optim = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    data = make_batch(batch_size, (size, size))
    model.train()
    step = time_call(lambda: model.train_step(data, optim), device, 1,
                     steps)['median']
    model.eval()
    inputs = model.data_preprocessor(data, False)['inputs'].to(device)
    with torch.no_grad():
        forward = time_call(lambda: model(inputs, mode='tensor'), device, 1,
                            steps)['median']
        one = time_call(lambda: model(inputs[:1], mode='tensor'), device, 1,
                        steps)['median']
    return dict(step=step, forward=forward, one=one)


def measure_speed(args: argparse.Namespace, steps: int = 3) -> dict:
    """Seconds per step and per image of the study on this machine.

    Args:
        args: The study's settings (:func:`.settings.load_study`).
        steps: Timed steps of each model (after one untimed).

    Returns:
        dict: The keys of :data:`.settings.SPEED_KEYS`.
    """
    import torch
    from mmengine.registry import init_default_scope

    import mmseg_kdas  # noqa: F401  (registers the models)
    from .configs import protocol_config

    device = torch.device('cuda' if args.device == 'cuda' else 'cpu')
    threads = torch.get_num_threads()
    if args.device == 'cpu':
        torch.set_num_threads(args.threads)
    init_default_scope('mmseg')
    try:
        timed = {}
        for name, base in (('teacher', args.teacher),
                           ('student', args.families['student'])):
            cfg = protocol_config(args, base, [], 0, teacher=name ==
                                  'teacher')
            timed[name] = _step_seconds(cfg, args.batch_size, args.size,
                                        device, steps)
    finally:
        torch.set_num_threads(threads)
    teacher, student = timed['teacher'], timed['student']
    per_image = teacher['forward'] / args.batch_size
    return dict(
        teacher=teacher['step'],
        student=student['step'],
        kd_cached=student['step'] * KD_CACHED_RATIO,
        kd_online=student['step'] + teacher['forward'],
        eval_teacher=teacher['one'] + EVAL_OVERHEAD,
        eval_student=student['one'] + EVAL_OVERHEAD,
        cache_per_image_rate=per_image)


def machine_speed(args: argparse.Namespace, work: str,
                  save: bool = True) -> dict:
    """:func:`measure_speed`, or the figures the work dir holds for this
    machine, size, batch and device.

    Args:
        args: The study's settings.
        work: The work dir (``speed.json``).
        save: Keep a new measurement there.

    Raises:
        ProtocolError: A CUDA study on a machine without CUDA.
    """
    if args.device == 'cuda':
        import torch
        if not torch.cuda.is_available():
            raise ProtocolError(
                "device 'cuda' but this machine has no CUDA device to time: "
                'run the study where it trains, or give the seconds per step '
                "in the study config's speed key (its dry run then plans "
                'with them)')
    key = dict(machine=machine_description(), size=args.size,
               batch_size=args.batch_size, device=args.device,
               threads=args.threads, teacher=args.teacher,
               student=args.families['student'])
    path = osp.join(work, SPEED_FILE)
    kept = read_json(path)
    if kept and kept.get('key') == key:
        return kept['seconds']
    print('Timing a few training steps of the teacher and the student on '
          'this machine for the plan ...', flush=True)
    seconds = measure_speed(args)
    if save:
        os.makedirs(work, exist_ok=True)
        write_json(path, dict(key=key, seconds=seconds))
    return seconds
