"""Minutes of a KD training run with the online teacher and with its cache.

    python tools/analysis_tools/benchmark_teacher_cache.py CONFIG
        [--iters 100] [--work-dir work_dirs/benchmark_teacher_cache]
        [--cfg-options KEY=VALUE ...]

On one machine, one after the other: saves the config's teacher with
random weights (its time does not depend on them), fills the teacher cache
with ``tools/cache_teacher.py``, then trains CONFIG for ``--iters``
iterations twice with ``tools/train.py`` (no validation, no checkpoint
before the end), with the online teacher and with the cache, and prints the
wall time of each and their ratio, the time of the fill and the size of the
cache. CONFIG is any KDAS or KD-baseline config whose
``train_dataloader.dataset`` points at data (set it with ``--cfg-options``).
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
import time

import torch
from mmengine.config import DictAction
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mmseg_kdas.models.distillers import load_model_config
from mmseg_kdas.utils.benchmark import markdown_table
from mmseg_kdas.utils.cli import ignore_pkg_resources_warning, load_config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='KDAS / KD-baseline config')
    parser.add_argument('--iters', type=int, default=100)
    parser.add_argument(
        '--work-dir', default='work_dirs/benchmark_teacher_cache')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={})
    return parser.parse_args()


def timed(cmd, log):
    """Run ``cmd`` in this checkout; its wall time in seconds."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([ROOT, env.get('PYTHONPATH', '')])
    start = time.time()
    with open(log, 'w') as f:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise RuntimeError(f'{" ".join(cmd)} failed; see {log}')
    return time.time() - start


def main():
    ignore_pkg_resources_warning()
    args = parse_args()
    work = osp.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    teacher_file = osp.join(work, 'teacher.pth')
    if not osp.isfile(teacher_file):
        teacher = MODELS.build(load_model_config(cfg.model.teacher))
        torch.save(dict(state_dict=teacher.state_dict()), teacher_file)
    options = [f'{k}={v}' for k, v in args.cfg_options.items()] + [
        f'model.teacher_ckpt={teacher_file}'
    ]
    cache = osp.join(work, 'cache')
    py = sys.executable
    fill = None
    if not osp.isdir(cache):
        fill = timed([
            py, 'tools/cache_teacher.py', args.config, '--out', cache,
            '--cfg-options', *options
        ], osp.join(work, 'cache.log'))
    size = sum(osp.getsize(osp.join(cache, f)) for f in os.listdir(cache))
    run = [
        f'train_cfg.max_iters={args.iters}', 'train_cfg.val_interval=100000',
        'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
        f'default_hooks.checkpoint.interval={args.iters}'
    ]
    seconds = {}
    for name, extra in (('online teacher', []),
                        ('teacher cache', [f'model.teacher_cache={cache}'])):
        out = osp.join(work, name.replace(' ', '_'))
        seconds[name] = timed([
            py, 'tools/train.py', args.config, '--work-dir', out,
            '--cfg-options', *options, *run, *extra
        ], osp.join(work, name.replace(' ', '_') + '.log'))
    rows = [[name, f'{s / 60:.2f}', f'{s / args.iters:.2f}']
            for name, s in seconds.items()]
    print(f'\n{osp.basename(args.config)}: {args.iters} iterations, '
          f'{torch.get_num_threads()} threads (process start and teardown '
          'included)\n')
    print(markdown_table(['run', 'minutes', 's / iteration'], rows))
    print(f'\ncached / online = '
          f'{seconds["teacher cache"] / seconds["online teacher"]:.3f}; '
          f'cache: {size / 2**20:.1f} MiB'
          + (f', filled in {fill / 60:.2f} min' if fill is not None else ''))


if __name__ == '__main__':
    main()
