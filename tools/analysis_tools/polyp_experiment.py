"""CPU-scale experiment: teacher, plain student, KDAS and reference student.

    python tools/analysis_tools/polyp_experiment.py DATA_ROOT
        [--test-set Kvasir] [--work-dir work_dirs/polyp_experiment]
        [--size 224] [--iters 600] [--batch-size 8] [--lr 5e-4]

Trains from scratch (no pretrained weights), under one reduced protocol,
the four models of the KDAS comparison on ``DATA_ROOT`` (PraNet layout:
``TrainDataset/{images,masks}``, ``TestDataset/<test set>/{images,masks}``):

1. teacher: Polyp-PVT on PVTv2-B2,
2. student: Polyp-PVT on PVTv2-B0, no distillation,
3. KDAS: the B0 student distilled from (1) as the paper intends,
4. KDAS-ref: the B0 student distilled from (1) with what the authors'
   script effectively optimises,

each for ``--iters`` iterations of batch ``--batch-size`` at
``--size`` x ``--size`` (multi-scale 0.75/1/1.25 in turn), AdamW at
``--lr`` with the recipe's weight decay and gradient clipping, through
``tools/train.py``; then evaluates each (the exported student for 3 and 4)
with ``tools/test.py`` and the polyp metric on ``--test-set``. It writes the
configs it ran, ``results.md`` (a markdown table) and ``results.png`` (mean
Dice per model and the training-loss curves) to the work dir. Finished
steps are skipped when the command is run again.
"""
import argparse
import copy
import json
import os
import os.path as osp
import subprocess
import sys
import time

from mmengine.config import Config, ConfigDict

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis_tools'))
from summarize_tests import latest_metrics  # noqa: E402

MODELS = [
    ('teacher', 'configs/polyp_pvt/'
     'polyp-pvt_pvtv2-b2_1xb16-100e_pranet-352x352.py'),
    ('student', 'configs/polyp_pvt/'
     'polyp-pvt_pvtv2-b0_1xb16-100e_pranet-352x352.py'),
    ('KDAS', 'configs/kdas/kdas_pvtb2_to_b0_kvasir.py'),
    ('KDAS-ref', 'configs/kdas/'
     'kdas-ref_polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-352x352.py'),
]
MEASURES = ['mDice', 'mIoU', 'wFm', 'Sm', 'mEm', 'MAE', 'Dice', 'IoU']


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('data_root', help='PraNet-layout data folder')
    parser.add_argument('--test-set', default='Kvasir')
    parser.add_argument(
        '--work-dir', default='work_dirs/polyp_experiment')
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--iters', type=int, default=600)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--lr', type=float, default=5e-4)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-workers', type=int, default=2)
    return parser.parse_args()


def protocol_config(base: str, args, teacher_ckpt: str = None) -> Config:
    """``base`` under the reduced protocol of this experiment."""
    cfg = Config.fromfile(osp.join(ROOT, base))
    size = (args.size, args.size)
    meta_keys = cfg.meta_keys
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadPolypAnnotations'),
        dict(type='Resize', scale=size, keep_ratio=False, backend='pillow'),
        dict(type='PackSegInputs', meta_keys=meta_keys),
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=size, keep_ratio=False, backend='pillow'),
        dict(type='LoadPolypAnnotations'),
        dict(type='PackSegInputs', meta_keys=meta_keys),
    ]
    cfg.train_dataloader = ConfigDict(
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        persistent_workers=args.num_workers > 0,
        sampler=dict(type='InfiniteSampler', shuffle=True),
        dataset=dict(
            type='PolypDataset',
            data_root=args.data_root,
            data_prefix=dict(
                img_path='TrainDataset/images',
                seg_map_path='TrainDataset/masks'),
            pipeline=train_pipeline))
    cfg.val_dataloader = ConfigDict(
        batch_size=1,
        num_workers=args.num_workers,
        persistent_workers=args.num_workers > 0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type='PolypDataset',
            data_root=args.data_root,
            data_prefix=dict(
                img_path=f'TestDataset/{args.test_set}/images',
                seg_map_path=f'TestDataset/{args.test_set}/masks'),
            test_set=args.test_set,
            test_mode=True,
            pipeline=test_pipeline))
    cfg.test_dataloader = copy.deepcopy(cfg.val_dataloader)
    cfg.train_cfg = ConfigDict(
        type='IterBasedTrainLoop',
        max_iters=args.iters,
        val_interval=args.iters)
    cfg.default_hooks.checkpoint = ConfigDict(
        type='CheckpointHook',
        by_epoch=False,
        interval=args.iters,
        max_keep_ckpts=1)
    cfg.default_hooks.logger = ConfigDict(
        type='LoggerHook', interval=10, log_metric_by_epoch=False)
    cfg.log_processor = ConfigDict(by_epoch=False)
    cfg.optim_wrapper.optimizer.lr = args.lr
    cfg.randomness = ConfigDict(seed=args.seed)
    # from scratch: no ImageNet weights offline
    segmentors = [cfg.model]
    if cfg.model.type == 'KDASDistiller':
        segmentors = [cfg.model.student, cfg.model.teacher]
        cfg.model.teacher_ckpt = teacher_ckpt
    for model in segmentors:
        model.backbone.init_cfg = None
    return cfg


def run(cmd, log_file):
    print('$ ' + ' '.join(cmd), flush=True)
    with open(log_file, 'a') as log:
        proc = subprocess.run(
            cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)} failed (exit '
                           f'{proc.returncode}); see {log_file}')


def read_losses(work_dir: str):
    """(iterations, total loss) logged during training."""
    for entry in sorted(os.listdir(work_dir)):
        path = osp.join(work_dir, entry, 'vis_data', 'scalars.json')
        if osp.isfile(path):
            steps, losses = [], []
            with open(path) as f:
                for line in f:
                    log = json.loads(line)
                    if 'loss' in log:
                        steps.append(log['step'])
                        losses.append(log['loss'])
            if steps:
                return steps, losses
    return [], []


def main():
    args = parse_args()
    work = osp.abspath(args.work_dir)
    args.data_root = osp.abspath(args.data_root)
    os.makedirs(work, exist_ok=True)
    py = sys.executable
    teacher_ckpt = osp.join(work, 'teacher', f'iter_{args.iters}.pth')
    results, curves, minutes = {}, {}, {}
    for name, base in MODELS:
        run_dir = osp.join(work, name)
        os.makedirs(run_dir, exist_ok=True)
        log_file = osp.join(run_dir, 'commands.log')
        cfg = protocol_config(base, args, teacher_ckpt)
        cfg_file = osp.join(work, f'{name}.py')
        cfg.dump(cfg_file)
        ckpt = osp.join(run_dir, f'iter_{args.iters}.pth')
        minutes_file = osp.join(run_dir, 'train_minutes.txt')
        if not osp.isfile(ckpt):
            start = time.time()
            run([py, 'tools/train.py', cfg_file, '--work-dir', run_dir],
                log_file)
            with open(minutes_file, 'w') as f:
                f.write(f'{(time.time() - start) / 60:.2f}\n')
        with open(minutes_file) as f:
            minutes[name] = float(f.read())
        test_cfg, test_ckpt = cfg_file, ckpt
        if cfg.model.type == 'KDASDistiller':  # evaluate what ships
            test_cfg = osp.join(run_dir, 'student_config.py')
            test_ckpt = osp.join(run_dir, f'iter_{args.iters}_student.pth')
        test_dir = osp.join(run_dir, 'test')
        try:
            results[name] = latest_metrics(test_dir)
        except FileNotFoundError:
            run([
                py, 'tools/test.py', test_cfg, test_ckpt, '--work-dir',
                test_dir
            ], log_file)
            results[name] = latest_metrics(test_dir)
        curves[name] = read_losses(run_dir)

    write_report(args, work, results, curves, minutes)


def write_report(args, work, results, curves, minutes):
    ts = args.test_set
    header = ['model'] + [f'{ts} {m}' for m in MEASURES]
    lines = [
        f'Protocol: trained from scratch on {args.data_root} '
        f'(TrainDataset), {args.iters} iterations of batch '
        f'{args.batch_size} at {args.size}x{args.size} (multi-scale '
        f'0.75/1/1.25 in turn), AdamW lr {args.lr:g}, seed {args.seed}; '
        f'evaluated on TestDataset/{ts} with PolypMetric.', '',
        '| ' + ' | '.join(header) + ' |',
        '|' + '---|' * len(header)
    ]
    for name, metrics in results.items():
        cells = [f'{metrics.get(f"{ts}/{m}", float("nan")):.4f}'
                 for m in MEASURES]
        lines.append('| ' + ' | '.join([name] + cells) + ' |')
    lines += ['', 'Wall time of training (this run, minutes): ' + ', '.join(
        f'{k} {v:.1f}' for k, v in minutes.items())]
    report = '\n'.join(lines) + '\n'
    with open(osp.join(work, 'results.md'), 'w') as f:
        f.write(report)
    print(report)

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    names = list(results)
    ax1.bar(names, [results[n].get(f'{ts}/mDice', 0) for n in names])
    ax1.set_ylabel(f'{ts} mean Dice')
    ax1.set_ylim(0, 1)
    for name, (steps, losses) in curves.items():
        ax2.plot(steps, losses, label=name)
    ax2.set_xlabel('iteration')
    ax2.set_ylabel('training loss (each model its own objective)')
    ax2.legend()
    fig.tight_layout()
    fig.savefig(osp.join(work, 'results.png'), dpi=100)
    print(f'wrote {osp.join(work, "results.md")} and results.png')


if __name__ == '__main__':
    main()
