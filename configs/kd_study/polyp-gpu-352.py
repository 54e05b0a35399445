# The study at full scale, on CUDA: 352x352 images, the reference recipe's
# batch 16 and learning rate, backbones initialised from ImageNet
# (pretrain/pvt_v2_b0.pth, pretrain/pvt_v2_b2.pth: configs/kdas/README.md
# says where to get them), one GPU (`gpus` > 1: tools/dist_train.sh), on the
# PraNet data with PraNet's validation list. Iteration counts: about 100
# epochs of the 1,300 training images for the teacher, 60 for students.
# No run here is bit-reproducible across GPU models; the ledger still
# records every digest.
_base_ = ['./polyp-cpu-128.py']

teacher_iters = 8000
teacher_val_interval = 800
iters = 4800
val_interval = 800
from_scratch = False
device = 'cuda'
gpus = 1
budget_minutes = 1440
# No GPU was measured (CUDA is needed): assumed seconds per iteration of
# batch 16 at 352 px on one A100-class GPU, and per evaluated image; a
# machine with CUDA measures its own when this is None.
speed = dict(
    _delete_=True,
    teacher=0.35,
    student=0.12,
    kd_cached=0.14,
    kd_online=0.30,
    eval_teacher=0.03,
    eval_student=0.02,
    cache_per_image_rate=0.01)

size = 352
run_replace = dict(train_dataloader=dict(batch_size=16))
run_merge = dict(optim_wrapper=dict(optimizer=dict(lr=1e-4)))
