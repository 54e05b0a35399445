"""The KD experiment tool interrupted while it writes its records.

Its steps are resumable: what a step has written decides what the next
invocation does. A record cut short by a kill or a full disk must never
pass for a finished one, e.g. a training attempt's minutes half-appended.
"""
import os.path as osp
import signal
import subprocess
import sys

import pytest
from conftest import ROOT

from mmseg_kdas import study

sys.path.insert(0, osp.join(ROOT, 'tests', 'data'))
from kdas_test_hooks import write_fault  # noqa: E402


def _minutes(run_dir):
    with open(osp.join(run_dir, study.MINUTES)) as f:
        return [float(line) for line in f if line.strip()]


def test_a_full_disk_leaves_the_minutes_as_they_were(tmp_path):
    run_dir = str(tmp_path)
    study.add_minutes(run_dir, 0.0, 120.0)
    with write_fault('enospc', study.MINUTES, 2):
        with pytest.raises(OSError, match=study.MINUTES):
            study.add_minutes(run_dir, 0.0, 450.0)
    assert _minutes(run_dir) == [2.0]
    assert [p.name for p in tmp_path.iterdir()] == [study.MINUTES]


def test_a_kill_while_writing_the_minutes_leaves_them_whole(tmp_path):
    run_dir = str(tmp_path)
    study.add_minutes(run_dir, 0.0, 120.0)
    # a process killed 2 characters into recording an attempt of 7.5 min
    script = (
        'import sys\n'
        f'sys.path[:0] = [{osp.join(ROOT, "tests", "data")!r}]\n'
        'from kdas_test_hooks import write_fault\n'
        'from mmseg_kdas import study\n'
        'with write_fault("kill", study.MINUTES, 2):\n'
        f'    study.add_minutes({run_dir!r}, 0.0, 450.0)\n')
    proc = subprocess.run([sys.executable, '-c', script],
                          cwd=ROOT,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-3000:]
    assert _minutes(run_dir) == [2.0]
