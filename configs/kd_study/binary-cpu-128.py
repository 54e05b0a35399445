# The distillation study (tools/kd_study.py, mmseg_kdas.study) on any binary
# data root in the PraNet layout, at CPU scale: 128x128 images, batch 8,
# every network from scratch, a converging schedule, 2 threads with the CPU
# determinism settings, five seeds: the plan estimates 4.8 hours on 2 cores
# of an AVX-512 CPU, 10.5 on the slower AVX2 ones (it warns above
# `budget_minutes`; "seeds=[0,1,2]": 3.6 and 7.8 hours; PraNet's 1,450
# training and 480 test images). Runs whose data root has
# no validation list get one made (`val_split`), written to the work dir and
# the ledger. docs/en/study.md says what each stage does.
#
# Plain keys: the runs, grids, seeds, iterations, tolerances and the gate.
# `run_replace` and `run_merge`: what every run changes in its shipped
# config (replaced key by key, or merged with mmengine's rules). The engine
# sets only what varies per run: the data root, the validation list and the
# test sets, the seed, the iterations (`train_cfg.max_iters`, the
# scheduler's `T_max` and `end`), the validation and checkpoint interval,
# the teacher's checkpoint and cache, a setting of a grid, the teacher's
# `save_best`, (`from_scratch`) no pretrained backbone, and the scale of the
# pipelines' resize: `size` x `size` (so `--cfg-options size=256` works).

# The shipped configs every run starts from.
teacher = 'configs/polyp_pvt/polyp-pvt_pvtv2-b2_1xb16-100e_pranet-352x352.py'
_pair = 'polyp-pvt-b2_polyp-pvt-b0_1xb16-100e_pranet-352x352.py'
families = {
    'student':
    'configs/polyp_pvt/polyp-pvt_pvtv2-b0_1xb16-100e_pranet-352x352.py',
    'KDAS': f'configs/kdas/kdas_{_pair}',
    'KDAS-ref': f'configs/kdas/kdas-ref_{_pair}',
    'PixelKD': f'configs/kd_baselines/pkd_{_pair}',
    'CWD': f'configs/kd_baselines/cwd_{_pair}',
    'AT': f'configs/kd_baselines/at_{_pair}',
}

# The grids, fixed before the runs: settings are (key under `model`, value)
# pairs; the first of each grid is its published setting and wins ties.
# KDAS: alpha and the temperature of L_AT ((0.3, 2) is the paper's).
kdas_paper = [('alpha', 0.3), ('loss_at.temperature', 2.0)]
grids = dict(
    KDAS=[
        kdas_paper,
        [('alpha', 0.3), ('loss_at.temperature', 4.0)],
        [('alpha', 0.5), ('loss_at.temperature', 2.0)],
        [('alpha', 0.5), ('loss_at.temperature', 4.0)],
    ],
    # T and the weight of the KD term (inside alpha * (...), alpha 0.3);
    # T 2, weight 1 is the shipped config
    PixelKD=[[('loss_at.temperature', t), ('loss_at.loss_weight', w)]
             for t, w in ((2.0, 1.0), (1.0, 1.0), (4.0, 1.0), (2.0, 3.0))],
    # T 1, weight 5: mmrazor's Cityscapes config; T 4, weight 3: the CWD
    # authors' script; both temperatures at weight 1
    CWD=[[('loss_at.temperature', t), ('loss_at.loss_weight', w)]
         for t, w in ((1.0, 5.0), (4.0, 3.0), (1.0, 1.0), (4.0, 1.0))],
    # the weight; 500 = beta / 2 of the AT paper (the shipped config)
    AT=[[('loss_at.loss_weight', w)] for w in (500.0, 100.0, 2500.0)],
)
# The methods of the final stage, in report order: a family at a setting,
# 'tuned' for the grid's choice (left out where an earlier method is the
# same run, e.g. KDAS (tuned) when the grid chose the paper's setting).
methods = [
    dict(name='student', family='student', setting=[]),
    dict(name='KDAS (paper)', family='KDAS', setting=kdas_paper),
    dict(name='KDAS (tuned)', family='KDAS', setting='tuned'),
    dict(name='KDAS-ref', family='KDAS-ref', setting=[]),
    dict(name='PixelKD (tuned)', family='PixelKD', setting='tuned'),
    dict(name='CWD (tuned)', family='CWD', setting='tuned'),
    dict(name='AT (tuned)', family='AT', setting='tuned'),
    dict(
        name='L_AT alone',
        family='KDAS',
        setting=kdas_paper + [('sgm_weight', 0.0)]),
    dict(
        name='L_SGM alone',
        family='KDAS',
        setting=kdas_paper + [('at_weight', 0.0)]),
]

# The report compares each of these methods with every other distilled
# method, paired by seed (optional; the plain student is always compared).
head_to_head = ['KDAS (paper)', 'KDAS (tuned)']
seeds = [0, 1, 2, 3, 4]  # of the final stage; the grid runs at seed 0
teacher_seeds = [0, 1]  # the teacher is the first; the others check it
teacher_iters = 3000
teacher_val_interval = 600
iters = 800
val_interval = 400
teacher_tolerance = 0.02  # largest spread of the teacher runs' best mDice
gate_margin = 0.05  # lead over the plain student the teacher needs
teacher_cache = True  # KD students read the teacher's maps from a cache
from_scratch = True  # no pretrained backbone (none is reachable offline)
budget_minutes = 480
device = 'cpu'  # or 'cuda' (`gpus` > 1: tools/dist_train.sh)
gpus = 1
threads = 2  # part of the protocol on CPUs: bits repeat at one count
# Seconds per training iteration and per evaluated image: None measures
# them on this machine (a few timed iterations) before planning.
speed = None

# The validation split: `file` a list (as PolypDataset's split_file reads
# it), or None to make one from TrainDataset/images: `fraction` of every
# source (a source: the stems a regular expression matches at their
# start), seeded; for the sources in `videos` (the expression's group is
# the frame number) whole runs of consecutive frames (gap <= `max_gap`).
val_split = dict(
    file=None,
    name='val',
    fraction=0.1,
    seed=0,
    sources=None,
    videos=[],
    max_gap=1)

# The protocol's data: every image and its mask resized to size x size,
# masks binarised; multi-scale 0.75 / 1 / 1.25, one rate per iteration.
size = 128
meta_keys = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
             'pad_shape', 'scale_factor', 'flip', 'flip_direction',
             'reduce_zero_label', 'test_set')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPolypAnnotations'),
    dict(type='Resize', scale=(size, size), keep_ratio=False,
         backend='pillow'),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(size, size), keep_ratio=False,
         backend='pillow'),
    dict(type='LoadPolypAnnotations'),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
_images = dict(img_path='TrainDataset/images',
               seg_map_path='TrainDataset/masks')
_one_by_one = dict(
    batch_size=1,
    sampler=dict(type='DefaultSampler', shuffle=False),
    num_workers=2,
    persistent_workers=True)
run_replace = dict(
    train_dataloader=dict(
        batch_size=8,
        sampler=dict(type='InfiniteSampler', shuffle=True),
        dataset=dict(
            type='PolypDataset',
            data_prefix=_images,
            split='train-minus-val',
            pipeline=train_pipeline),
        num_workers=2,
        persistent_workers=True),
    val_dataloader=dict(
        dataset=dict(
            type='PolypDataset',
            data_prefix=_images,
            split='val',
            test_mode=True,
            pipeline=test_pipeline),
        **_one_by_one),
    # one dataset per test set (data_prefix, test_set: the engine's)
    test_dataloader=dict(
        dataset=dict(
            type='PolypDataset', test_mode=True, pipeline=test_pipeline),
        **_one_by_one),
    val_evaluator=dict(type='PolypMetric'),
    test_evaluator=dict(type='PolypMetric'),
    train_cfg=dict(type='MultiScaleIterBasedTrainLoop'),
    # a converging schedule: cosine to 0 over the run, by iteration
    param_scheduler=[
        dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=False, begin=0)
    ],
    log_processor=dict(by_epoch=False))
run_merge = dict(
    default_hooks=dict(
        checkpoint=dict(
            type='CheckpointHook', by_epoch=False, max_keep_ckpts=1),
        logger=dict(type='LoggerHook', interval=50,
                    log_metric_by_epoch=False)),
    optim_wrapper=dict(optimizer=dict(lr=5e-4)),
    model=dict(
        data_preprocessor=dict(batch_augments=[
            dict(type='BatchMultiScaleResize', rates=(0.75, 1.0, 1.25),
                 mode='cycle')
        ])))
# appended to the config's custom_hooks (replacing one of the same type):
# each iteration draws from (seed, iteration), so a resumed run trains to
# the same bits as an uninterrupted one
run_hooks = [dict(type='IterationSeedHook')]
