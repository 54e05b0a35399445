# The README's study: the binary study on the PraNet data (Kvasir-SEG and
# CVC-ClinicDB training images; every folder of TestDataset/ a test set),
# validated on PraNet's committed list (150 images, CVC-ClinicDB's videos
# held out whole) instead of a made one. Its runs are those of the
# committed ledger (docs/polyp_experiment/ledger), bit for bit.
_base_ = ['./binary-cpu-128.py']

val_split = dict(file='mmseg_kdas/datasets/splits/pranet_val.txt',
                 name='PraNet-val')
