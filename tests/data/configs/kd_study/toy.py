# A whole distillation study at toy size for the tests: the binary preset
# with tiny networks, 64 px, a grid of two KDAS settings, two seeds, one
# teacher run, iterations in single digits, the seconds per step given.
_base_ = ['../../../../configs/kd_study/binary-cpu-128.py']

teacher = 'tests/data/configs/kd_study/toy_teacher.py'
families = dict(
    _delete_=True,
    student='tests/data/configs/kd_study/toy_student.py',
    KDAS='tests/data/configs/kd_study/toy_kdas.py')
grids = dict(
    _delete_=True,
    KDAS=[[('alpha', 0.3), ('loss_at.temperature', 2.0)],
          [('alpha', 0.3), ('loss_at.temperature', 4.0)]])
methods = [
    dict(name='student', family='student', setting=[]),
    dict(name='KDAS (paper)', family='KDAS',
         setting=[('alpha', 0.3), ('loss_at.temperature', 2.0)]),
    dict(name='KDAS (tuned)', family='KDAS', setting='tuned'),
]
seeds = [0, 1]
teacher_seeds = [0]
teacher_iters = 4
teacher_val_interval = 2
iters = 2
val_interval = 2
gate_margin = -1.0  # random tiny networks: any teacher passes
speed = dict(
    _delete_=True,
    teacher=0.1,
    student=0.05,
    kd_cached=0.06,
    kd_online=0.1,
    eval_teacher=0.02,
    eval_student=0.01,
    cache_per_image_rate=0.01)
val_split = dict(fraction=0.25)

size = 64
_no_workers = dict(num_workers=0, persistent_workers=False)
run_replace = dict(
    train_dataloader=dict(batch_size=2, **_no_workers),
    val_dataloader=_no_workers,
    test_dataloader=_no_workers)
run_merge = dict(default_hooks=dict(logger=dict(interval=1)))
