"""The code style the project follows (flake8, isort; see setup.cfg)."""
import subprocess
import sys

from conftest import ROOT

PATHS = ['mmseg_kdas', 'tools', 'tests', 'configs']


def _run(*args):
    return subprocess.run([sys.executable, '-m', *args],
                          cwd=ROOT,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True)


def test_flake8():
    proc = _run('flake8', *PATHS)
    assert proc.returncode == 0, proc.stdout


def test_isort():
    proc = _run('isort', '--check-only', '--diff', *PATHS)
    assert proc.returncode == 0, proc.stdout
