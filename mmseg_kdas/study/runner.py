"""The study's runner: commands, their records and resumed attempts.

Every command runs in this checkout; on a CPU study on pinned CPU code
paths (:func:`reproducible_env`) with CUDA hidden, on a CUDA study as it
is (``gpus`` > 1: ``tools/dist_train.sh``). A training attempt that was
killed is counted when the run resumes (:func:`account_interrupted_attempt`).
:class:`Trainer` trains, trains again and tests the runs of a work dir.
"""
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

from mmengine.config import Config

from mmseg_kdas.utils.atomic import atomic_write_text
from mmseg_kdas.utils.checkpoint_file import weights_digest
from mmseg_kdas.utils.config_text import config_text
from .ledger import RECORD, Ledger, read_json, write_json
from .protocol import ROOT, ProtocolError

STARTED = 'train_started.txt'  # present while a training attempt runs
MINUTES = 'train_minutes.txt'  # one line per training attempt


#: The environment of every command: the same CPU code paths and thread
#: count on every x86-64 machine with AVX2 (oneDNN, ATen's kernels and
#: MKL's conditional numerical reproducibility), so that a run trained
#: again on another machine ends with the same weights. Measured on one
#: machine: two teacher runs of 16 iterations end with identical weights
#: with and without it, at the same speed (32.6 s and 32.5 s).
def reproducible_env(threads: int) -> Dict[str, str]:
    """The variables :func:`run` sets (see above)."""
    return {
        'MKL_CBWR': 'AVX2,STRICT',
        'ATEN_CPU_CAPABILITY': 'avx2',
        'ONEDNN_MAX_CPU_ISA': 'AVX2',
        'DNNL_MAX_CPU_ISA': 'AVX2',
        'OMP_NUM_THREADS': str(threads),
        'MKL_NUM_THREADS': str(threads),
    }


def run(cmd: List[str], log_file: str, threads: int = 2,
        device: str = 'cpu') -> None:
    """Run ``cmd`` in this checkout with its code first on the path; on a
    CPU (``device``) in :func:`reproducible_env` and with no CUDA device
    visible.

    Raises:
        RuntimeError: If it fails, naming the command and the log.
    """
    print('$ ' + ' '.join(cmd), flush=True)
    env = dict(os.environ)
    if device == 'cpu':
        env.update(reproducible_env(threads), CUDA_VISIBLE_DEVICES='')
    env['PYTHONPATH'] = os.pathsep.join(
        [ROOT] + [p for p in [env.get('PYTHONPATH')] if p])
    with open(log_file, 'a') as log:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)} failed (exit '
                           f'{proc.returncode}); see {log_file}')


def train_command(cfg_file: str, run_dir: str, gpus: int = 1) -> List[str]:
    """``tools/train.py`` (one process) or ``tools/dist_train.sh`` (``gpus``
    processes) on a config, resuming from ``run_dir``'s last checkpoint."""
    if gpus > 1:
        return [
            'bash', 'tools/dist_train.sh', cfg_file,
            str(gpus), '--work-dir', run_dir, '--resume'
        ]
    return [
        sys.executable, 'tools/train.py', cfg_file, '--work-dir', run_dir,
        '--resume'
    ]


def read_curve(work_dir: str, key: str) -> Dict[int, float]:
    """``{iteration: value}`` of a validation metric logged in a work dir.

    Reads every ``<timestamp>/vis_data/scalars.json`` (a resumed run writes
    several); later runs overwrite earlier values of the same iteration.
    """
    curve = {}
    for entry in sorted(os.listdir(work_dir)):
        path = osp.join(work_dir, entry, 'vis_data', 'scalars.json')
        if not osp.isfile(path):
            continue
        with open(path) as f:
            for line in f:
                log = json.loads(line)
                if key in log:
                    curve[int(log['step'])] = float(log[key])
    return curve


def account_interrupted_attempt(run_dir: str) -> Optional[float]:
    """Count the wall time of a training attempt that was killed.

    A training attempt writes its start time to ``STARTED`` and, when it
    ends, its minutes to ``MINUTES``. If the start file is still
    there, the attempt was killed (e.g. at the end of a session): its time
    is taken as ending at the newest file it wrote under ``run_dir`` (its
    log, written at every logged iteration), added to ``MINUTES`` and
    returned. Without this, a run spanning
    sessions would report only its last attempt.
    """
    started_file = osp.join(run_dir, STARTED)
    minutes_file = osp.join(run_dir, MINUTES)
    if not osp.isfile(started_file):
        return None
    with open(started_file) as f:
        start = float(f.read())
    last = start
    for dirpath, _, files in os.walk(run_dir):
        for name in files:
            path = osp.join(dirpath, name)
            if path not in (started_file, minutes_file):
                last = max(last, osp.getmtime(path))
    minutes = add_minutes(run_dir, start, last)
    os.remove(started_file)
    return minutes


def add_minutes(run_dir: str, start: float, end: float) -> float:
    """Append the minutes of an attempt from ``start`` to ``end`` (seconds
    since the epoch) to the run's ``MINUTES``; returns them."""
    minutes = (end - start) / 60
    path = osp.join(run_dir, MINUTES)
    previous = open(path).read() if osp.isfile(path) else ''
    atomic_write_text(path, previous + f'{minutes:.2f}\n')
    return minutes


def _diverged(log_file: str) -> Optional[str]:
    """The non-finite-loss message of a failed training log, if any."""
    if not osp.isfile(log_file):
        return None
    with open(log_file, errors='replace') as f:
        lines = f.read()[-20000:].splitlines()
    hits = [line for line in lines if 'non-finite loss' in line]
    return hits[-1].strip() if hits else None


def latest_metrics(work_dir: str) -> dict:
    """The metrics of the newest test run in ``work_dir``."""
    files = [
        f for f in glob.glob(osp.join(work_dir, '*', '*.json'))
        if osp.basename(f)[:-5] == osp.basename(osp.dirname(f))
    ]
    if not files:
        raise FileNotFoundError(
            f'no <timestamp>/<timestamp>.json metrics in {work_dir}; is it '
            'the --work-dir of a finished tools/test.py run?')
    with open(max(files)) as f:
        return json.load(f)


def machine_description(cpuinfo: str = '/proc/cpuinfo') -> str:
    """``'2 cores of an "AMD EPYC" CPU (family 25, model 1, AVX2), torch
    2.14.1'``: where it ran. Family, model and the widest vector ISA tell
    apart CPUs that share a model name (a cloud VM's "AMD EPYC" may be
    one generation or another)."""
    import platform

    import torch
    model = platform.processor() or platform.machine()
    fields: Dict[str, str] = {}
    try:
        with open(cpuinfo) as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(':')
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    model = fields.get('model name', model)
    details = []
    if 'cpu family' in fields and 'model' in fields:
        details.append(f'family {fields["cpu family"]}, model '
                       f'{fields["model"]}')
    flags = set(fields.get('flags', '').split())
    isa = next((name for flag, name in (('avx512f', 'AVX-512'),
                                        ('avx2', 'AVX2')) if flag in flags),
               None)
    if isa:
        details.append(isa)
    where = f' ({", ".join(details)})' if details else ''
    return (f'{os.cpu_count()} cores of an "{model}" CPU{where}, torch '
            f'{torch.__version__.split("+")[0]}')


def _attempts(record: dict) -> str:
    n = record.get('attempts', 1)
    if n == 1:
        return 'the ledger\'s run trained in one attempt'
    return f'the ledger\'s run was resumed ({n} attempts)'


class Trainer(Ledger):
    """Trains, trains again and tests the runs of a work dir.

    Args:
        work: The work dir.
        ledger: The ledger folder, or None.
        runner: Runs one command (:func:`run`; tests pass a fake).
        val_key: The validation metric of the curves (``'val/mDice'``).
        gpus: Processes of a training run (``tools/dist_train.sh``).
    """

    def __init__(self, work: str, ledger: Optional[str] = None,
                 runner: Callable[[List[str], str], None] = run,
                 val_key: str = 'val/mDice', gpus: int = 1) -> None:
        super().__init__(work, ledger)
        self.runner = runner
        self.val_key = val_key
        self.gpus = gpus

    def train(self, name: str, cfg: Config, run_dir: str,
              allow_divergence: bool = False,
              to_ledger: bool = True) -> dict:
        """Train one config (unless its record is here); returns its record.

        The record (``record.json``) holds the validation curve, its last
        value, the training minutes of every attempt, the digest of the
        last checkpoint's weights and the machine. A run stopped by a
        non-finite loss is recorded as ``diverged`` (validation NaN) when
        ``allow_divergence``; any other failure stops the tool. The record
        goes to the ledger too unless not ``to_ledger``.
        """
        record = read_json(osp.join(run_dir, RECORD))
        if record is not None:
            return record
        os.makedirs(run_dir, exist_ok=True)
        account_interrupted_attempt(run_dir)  # before this call writes
        log_file = osp.join(run_dir, 'commands.log')
        cfg_file = osp.join(run_dir, f'{name}.py')
        atomic_write_text(cfg_file, config_text(cfg))
        iters = cfg.train_cfg.max_iters
        diverged = None
        # the last checkpoint alone is not a finished run: an attempt
        # killed right after it lacks the student export
        outputs = [osp.join(run_dir, f'iter_{iters}.pth')]
        if cfg.model.type == 'KDASDistiller':
            outputs.append(osp.join(run_dir, f'iter_{iters}_student.pth'))
        if not all(osp.isfile(path) for path in outputs):
            started_file = osp.join(run_dir, STARTED)
            start = time.time()
            atomic_write_text(started_file, f'{start}\n')
            try:
                self.runner(train_command(cfg_file, run_dir, self.gpus),
                            log_file)
            except RuntimeError:
                diverged = _diverged(log_file)
                if not (allow_divergence and diverged):
                    raise
            finally:
                add_minutes(run_dir, start, time.time())
                os.remove(started_file)
        with open(osp.join(run_dir, MINUTES)) as f:  # every attempt
            attempts = [float(line) for line in f if line.strip()]
        curve = read_curve(run_dir, self.val_key)
        record = dict(
            config=osp.relpath(cfg_file, self.work),
            iters=iters,
            val={str(i): v for i, v in sorted(curve.items())},
            val_last=float('nan') if diverged else curve.get(
                iters, float('nan')),
            diverged=diverged,
            minutes=sum(attempts),
            attempts=len(attempts),
            distilled=cfg.model.type == 'KDASDistiller',
            machine=machine_description())
        if not diverged:
            if iters not in curve:
                raise RuntimeError(f'{run_dir}: no {self.val_key} at '
                                   f'iteration {iters} in its logs')
            record['weights'] = weights_digest(outputs[0])
        if to_ledger:
            self.save_record(run_dir, record)
        else:
            write_json(osp.join(run_dir, RECORD), record)
        return record

    def reproduce(self, name: str, cfg: Config, run_dir: str,
                  expected: dict) -> dict:
        """Train a run of the ledger again here, for its files.

        Returns:
            dict: The ledger's record with this reproduction added to its
            ``reproductions`` (minutes, machine).

        Raises:
            ProtocolError: If it ends with other weights than the ledger's
                (the message names the run, both digests, both validation
                values and both machines); the ledger is left as it was.
        """
        os.makedirs(run_dir, exist_ok=True)
        local = osp.join(run_dir, RECORD)
        if osp.isfile(local):  # its checkpoint is gone: train it again
            os.replace(local, local + '.old')
        new = self.train(name, cfg, run_dir, to_ledger=False)
        if new.get('weights') != expected.get('weights'):
            os.replace(local, local + '.unreproduced')
            raise ProtocolError(
                f'{run_dir} was trained again on this machine for its '
                'files and ended with other weights than the ledger\'s '
                f'record ({new.get("weights")} instead of '
                f'{expected.get("weights")}; validation mean Dice '
                f'{new["val_last"]:.4f} here, {expected["val_last"]:.4f} '
                f'there; here: {new["machine"]}, there: '
                f'{expected.get("machine", "not recorded")}; '
                f'{_attempts(expected)}). Training is '
                'not bit-reproducible between the two machines, so the '
                'ledger\'s runs that depend on this one cannot be combined '
                'with new ones: continue on the ledger\'s machine, or start '
                'a new --ledger.')
        record = dict(
            expected,
            reproductions=list(expected.get('reproductions', [])) +
            [dict(minutes=new['minutes'], machine=new['machine'])])
        self.save_record(run_dir, record)
        return record

    def evaluate(self, run_dir: str, cfg_file: str, ckpt: str,
                 test_dir: str) -> dict:
        """The metrics of ``tools/test.py`` on a config and checkpoint,
        written to ``test_dir`` (read from there if a test ran already)."""
        try:
            return latest_metrics(test_dir)
        except FileNotFoundError:
            self.runner([
                sys.executable, 'tools/test.py', cfg_file, ckpt,
                '--work-dir', test_dir
            ], osp.join(run_dir, 'commands.log'))
            return latest_metrics(test_dir)

    def test(self, run_dir: str, record: dict, cfg_file: str,
             ckpt: str) -> dict:
        """Evaluate a trained model on the test sets (unless done)."""
        if 'test' not in record:
            metrics = self.evaluate(run_dir, cfg_file, ckpt,
                                    osp.join(run_dir, 'test'))
            record = dict(record, test=metrics)
            self.save_record(run_dir, record)
        return record
