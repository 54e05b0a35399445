"""Cost of one KDAS training step against its parts, on one batch.

    python tools/analysis_tools/benchmark_kd_step.py CFG [--batch-size 2]
        [--size 352] [--device cpu|cuda] [--amp] [--channels-last]
        [--warmup 2] [--repeats 5]

Times, in one process and on the same batch: the KDAS step (forward of
student and teacher, losses, backward, optimizer step), the KDAS step with a
warm teacher cache (the teacher's maps read from a cache of this batch,
:mod:`mmseg_kdas.teacher_cache`; the teacher is not
run), (a) a student-only step (the student's own losses, backward, step) and
(b) a teacher forward alone, and prints the distillation overhead
``KD step / (student step + teacher forward)`` (1.0 means distilling costs
nothing beyond running both networks) and the ratios of both KD steps to the
student step. Peak memory is the CUDA allocator's peak, or on the CPU the
peak growth of the resident set.
"""
import argparse
import copy
import os.path as osp
import tempfile

import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mmseg_kdas.models.distillers import load_model_config
from mmseg_kdas.teacher_cache import (TeacherCacheWriter, run_record,
                                      teacher_maps)
from mmseg_kdas.testing import make_batch
from mmseg_kdas.utils.benchmark import (PeakMemory, markdown_table,
                                        time_interleaved)
from mmseg_kdas.utils.cli import ignore_pkg_resources_warning, load_config


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='KDAS distiller config')
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--size', type=int, default=352)
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--amp', action='store_true', help='AmpOptimWrapper (GPU)')
    parser.add_argument(
        '--channels-last', action='store_true', help='NHWC memory format')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument(
        '--threads', type=int, default=None, help='torch CPU threads')
    return parser.parse_args()


def drop_batch_augments(cfg) -> None:
    """Remove ``batch_augments`` from every data preprocessor in ``cfg``."""
    if isinstance(cfg, dict):
        if 'batch_augments' in cfg:
            cfg['batch_augments'] = None
        for value in cfg.values():
            drop_batch_augments(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            drop_batch_augments(value)


def write_batch_cache(folder: str, distiller, model_cfg, data: dict,
                      inputs) -> None:
    """A teacher cache of one batch (its samples get ``img_path`` names)."""
    for i, sample in enumerate(data['data_samples']):
        sample.set_metainfo(dict(img_path=osp.join(folder, f'{i}.png')))
    maps = teacher_maps(distiller.teacher, inputs, distiller.teacher_sources)
    writer = TeacherCacheWriter(folder, len(data['data_samples']))
    writer.plan(inputs.shape[-2:], maps)
    writer.allocate()
    writer.write(range(len(data['data_samples'])), inputs.shape[-2:], maps)
    writer.finish(
        run_record(
            load_model_config(model_cfg.teacher, 'teacher'), None,
            distiller.preprocessor_cfg, [],
            [s.key for s in distiller.teacher_sources],
            [s.img_path for s in data['data_samples']]))


def main():
    ignore_pkg_resources_warning()
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    device = torch.device(args.device)

    model_cfg = cfg.model.copy()
    model_cfg.pop('teacher_ckpt', None)  # random weights time the same
    # Multi-scale batch augmentation would change the input size from one
    # step to the next: every step here runs at --size.
    drop_batch_augments(model_cfg)
    distiller = MODELS.build(model_cfg)
    if not hasattr(distiller, 'student'):
        raise TypeError(f'{args.config}: model is not a distiller (it has '
                        'no student)')
    distiller.to(device)
    if args.channels_last:
        distiller.to(memory_format=torch.channels_last)
    student, teacher = distiller.student, distiller.teacher
    # The student-only baseline trains its own copy, so both steps start
    # from the same weights and optimizer state.
    student_alone = copy.deepcopy(student)

    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    if args.amp:
        optim_cfg['type'] = 'AmpOptimWrapper'
        optim_cfg['loss_scale'] = 'dynamic'
    kd_optim = build_optim_wrapper(distiller, copy.deepcopy(optim_cfg))
    student_optim = build_optim_wrapper(student_alone,
                                        copy.deepcopy(optim_cfg))

    data = make_batch(args.batch_size, (args.size, args.size))
    teacher_inputs = teacher.data_preprocessor(data, False)['inputs']

    cache_dir = tempfile.TemporaryDirectory()
    write_batch_cache(cache_dir.name, distiller, model_cfg, data,
                      teacher_inputs)
    cached_cfg = copy.deepcopy(model_cfg)
    cached_cfg.teacher_cache = cache_dir.name
    cached = MODELS.build(cached_cfg).to(device)
    if args.channels_last:
        cached.to(memory_format=torch.channels_last)
    cached.load_state_dict(distiller.state_dict(), strict=False)
    # the benchmark's own batch: nothing to check against a data set
    cached.teacher_cache.data_checked = True
    cached_optim = build_optim_wrapper(cached, copy.deepcopy(optim_cfg))

    def kd_step():
        distiller.train_step(data, kd_optim)

    def cached_kd_step():
        cached.train_step(data, cached_optim)

    def student_step():
        student_alone.train_step(data, student_optim)

    def teacher_forward():
        with torch.no_grad(), torch.autocast(
                device.type, enabled=args.amp and device.type == 'cuda'):
            teacher(teacher_inputs, mode='tensor')

    distiller.train()
    cached.train()
    student_alone.train()
    fns = {
        'KDAS step': kd_step,
        'KDAS step, warm teacher cache': cached_kd_step,
        '(a) student step': student_step,
        '(b) teacher forward': teacher_forward
    }
    peaks = {}
    for name, fn in fns.items():
        with PeakMemory(device) as mem:
            fn()
        peaks[name] = mem.peak_bytes
    stats = time_interleaved(fns, device, args.warmup, args.repeats)
    times = {name: t['median'] for name, t in stats.items()}
    rows = [[
        name, f'{t["median"] * 1e3:.1f}',
        f'{t["min"] * 1e3:.1f}-{t["max"] * 1e3:.1f}',
        f'{peaks[name] / 2**20:.0f}'
    ] for name, t in stats.items()]
    ratio = times['KDAS step'] / (
        times['(a) student step'] + times['(b) teacher forward'])

    print(f'\n{osp.basename(args.config)}: batch {args.batch_size}, '
          f'{args.size}x{args.size}, {device}'
          + (f' ({torch.cuda.get_device_name(device)})'
             if device.type == 'cuda' else
             f', {torch.get_num_threads()} threads')
          + (', AMP' if args.amp else '') +
          (', channels-last' if args.channels_last else '') +
          f'; median of {args.repeats} interleaved rounds after '
          f'{args.warmup} warm-up rounds\n')
    print(
        markdown_table(['step', 'median ms', 'min-max ms', 'peak MiB'],
                       rows))
    print(f'\nKD overhead: KD step / (student step + teacher forward) = '
          f'{ratio:.3f}')
    student = times['(a) student step']
    print(f'KD step / student step = {times["KDAS step"] / student:.3f}')
    print('KD step with cache / student step = '
          f'{times["KDAS step, warm teacher cache"] / student:.3f}')
    cache_dir.cleanup()


if __name__ == '__main__':
    main()
