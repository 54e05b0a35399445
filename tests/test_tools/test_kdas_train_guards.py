"""tools/train.py --amp on a tiny KDAS run on the CPU, whose teacher turns
NaN at iteration 3: two finite mixed-precision iterations, then a stop."""
import glob
import json
import math
import os.path as osp

import pytest
from conftest import CONFIGS
from test_train import run_tool

from mmseg_kdas.datasets.synthetic import make_synthetic_polyp_dataset


@pytest.fixture(scope='module')
def run(tmp_path_factory, python):
    """One run (a subprocess costs seconds): work dir and output."""
    root = make_synthetic_polyp_dataset(
        str(tmp_path_factory.mktemp('polyp')), num_train=4, num_test=1)
    work_dir = tmp_path_factory.mktemp('kdas_nan')
    proc = run_tool([
        python, 'tools/train.py',
        osp.join(CONFIGS, 'tiny_kdas_nan.py'), '--amp', '--cfg-options',
        f'train_dataloader.dataset.data_root={root}'
    ], work_dir, python, check=False)
    return work_dir, proc


def test_amp_on_cpu_keeps_the_kdas_terms_finite(run):
    # mmengine's AmpOptimWrapper needs a GPU: tools/train.py --amp uses
    # CPUAmpOptimWrapper (bfloat16 autocast) on the CPU
    work_dir, proc = run
    with open(work_dir / 'dtypes.json') as f:
        dtypes = json.load(f)
    # the networks ran in bfloat16, the distillation terms in float32
    assert dtypes['student'] == dtypes['teacher'] == 'torch.bfloat16'
    assert {dtypes[k] for k in ('loss_at_0', 'loss_at_1', 'loss_sgm_0')
            } == {'torch.float32'}
    scalars = glob.glob(str(work_dir / '*' / 'vis_data' / 'scalars.json'))
    assert len(scalars) == 1, proc.stdout[-3000:]
    with open(scalars[0]) as f:
        logs = [json.loads(line) for line in f if line.strip()]
    logs = [log for log in logs if 'loss' in log]
    assert [log['step'] for log in logs] == [1, 2]
    for log in logs:
        terms = {k: v for k, v in log.items() if 'loss' in k}
        assert {'loss_at_0', 'loss_at_1', 'loss_sgm_0'} <= set(terms)
        assert all(math.isfinite(v) for v in terms.values()), terms


def test_a_nan_term_stops_training_and_names_it(run):
    work_dir, proc = run
    assert proc.returncode != 0
    message = [
        line for line in proc.stdout.splitlines()
        if line.startswith('FloatingPointError')
    ]
    assert message, proc.stdout[-3000:]
    message = message[-1]
    assert 'non-finite loss at iteration 3:' in message
    for term in ('loss_at_0 = nan', 'loss_at_1 = nan', 'loss_sgm_0 = nan'):
        assert term in message
    assert 'seg.' not in message  # the student's own losses are finite
    assert message.endswith(f'{osp.join(work_dir, "iter_2.pth")}.')
    # stopped at once: no checkpoint of the NaN iteration nor after it
    assert osp.isfile(work_dir / 'iter_2.pth')
    assert not glob.glob(str(work_dir / 'iter_[34]*.pth'))
