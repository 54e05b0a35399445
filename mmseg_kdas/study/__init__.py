"""The distillation study: does distilling pay on this data?

``tools/kd_study.py STUDY_CONFIG DATA_ROOT --work-dir DIR`` runs it
(``docs/en/study.md``). A study config (``configs/kd_study/``: the teacher
and the families as shipped configs, the grids, methods, seeds, schedule,
tolerances, the gate, the validation split and what every run changes in
its shipped config) is read by :mod:`.settings`; one module per concern:
:mod:`.protocol` (runs, selection rules), :mod:`.configs` (every run's
config, built with mmengine's ``Config``), :mod:`.split` (the validation
split, made where the config names no list), :mod:`.speed` (the plan's
seconds, measured), :mod:`.plan` (steps, minutes, what is left),
:mod:`.ledger` (records, digests), :mod:`.runner` (commands, resume),
:mod:`.stats` (paired t, share of the gap), :mod:`.report` (tables, plots,
``results.json``), :mod:`.experiment` (the steps on one work dir) and
:mod:`.cards` (the configs' model cards, ``tools/kd_study.py --cards``).

``DATA_ROOT`` is in the PraNet layout: ``TrainDataset/{images,masks}``
and one test set per folder of ``TestDataset/``. Every model trains on the
training images outside the validation split and is validated on it; the
test sets are evaluated at the very end, on the chosen models only: no
choice depends on them. The stages, each skipped when done:

1. **Teacher.** The teacher config, the first of ``teacher_seeds``, for
   ``teacher_iters``; its checkpoint is the one of its best validation
   mean Dice (fixed before any run: no choice among seeds).
2. **Gate.** The plain student (seed 0): students are distilled only from
   a teacher at least ``gate_margin`` ahead of it on validation.
3. **Teacher caches.** ``tools/cache_teacher.py`` runs the teacher once
   per set of maps the KD families read; every KD student then trains from
   a cache at about a plain run's cost (``teacher_cache=False``: online).
4. **Grid.** Every family with a grid, seed 0, every setting; the best
   validation mean Dice at the last iteration wins (the first listed on a
   tie; a run that diverged is never chosen).
5. **Agreement.** The other teacher seeds: their best validation values
   must lie within ``teacher_tolerance`` (``--accept-teacher-disagreement``
   continues all the same, and the report says so).
6. **Final.** The config's ``methods`` (a tuned one at the grid's
   choice), every seed of ``seeds``, each tested at its last iteration with
   ``tools/test.py`` and :class:`PolypMetric` on every test set, students
   as exported.

The plan, with the minutes of every stage from the seconds this machine
takes per step (:mod:`.speed`), is printed first (``--dry-run``: only
that). Writes to the work dir ``protocol.json`` (a rerun with other
protocol settings is refused), ``val_split.txt`` (a made split),
``runs/<family>/<setting>/seed<n>/`` (config, checkpoints, logs,
``record.json``), ``teacher_cache/``, ``selection.json``, ``results.md``
(teachers, gate, grids, then per test set: mean +- std over seeds, per-seed
paired differences to the plain student with their paired t, and the share
of the teacher's lead closed, where the teacher leads), ``results.json``
(the same figures as data; ``tools/kd_study.py --cards`` writes
the configs' READMEs and metafiles from it) and ``results_<test set>.png``.
An interrupted run resumes from its last checkpoint (the reported training
time adds up every attempt). Subprocesses run this checkout's code
(``PYTHONPATH``), whatever is installed; a CPU study on pinned CPU code
paths and ``threads`` threads (:func:`reproducible_env`), so that a run
trained again ends with the same weights. The selected KDAS setting is
written as a full-scale config for the data root
(``kdas_selected.py``, ready for ``tools/train.py``).

``--ledger DIR`` keeps every record in ``DIR`` too (a folder committed with
the results): a step recorded there is skipped on any machine, so a run
spans machines whose work dirs do not survive. A step whose files a later
step needs is trained again and must reproduce the ledger's weights
(:class:`Experiment`).

A test set added to ``TestDataset/`` after the runs were tested is tested
on the next run, alone, with the chosen models and the teacher (those
whose checkpoints are not in the work dir are trained again first, as
above), and its figures are added to their records; the figures recorded
stay as they are. A set that the records hold and the data root no longer
has is named in the plan and in ``results.md`` and is not reported: the
report is of the data root it names (:func:`plan_test_sets`,
:func:`reported_sets`).

``--rerun FOLDER ...`` then trains runs of the finished protocol again from
scratch under ``rerun/`` and compares every figure with their first run
(``rerun.md``, :meth:`Experiment.rerun`).
"""
from .configs import (cache_command, cache_name, family_sources, plan_caches,
                      protocol_config, protocol_settings, teacher_sources,
                      test_config)
from .experiment import Experiment, run_study
from .ledger import (RECORD, Ledger, compare_records, format_rerun, read_json,
                     tested_sets, untested_sets, write_json)
from .plan import (Step, count_images, find_test_sets, format_plan, plan_steps,
                   plan_test_sets, recorded_selection, steps_done, steps_left)
from .protocol import (MEASURES, RESULTS, ROOT, TIMINGS, ProtocolError, Run,
                       Scores, Setting, best_checkpoint, best_checkpoint_file,
                       check_gate, choose_teacher, final_methods, grid_runs,
                       select_setting, setting_label, setting_slug,
                       teacher_checkpoint)
from .report import (grid_summary, plot, reported_sets, results_summary,
                     trained_on, write_report)
from .runner import (MINUTES, STARTED, Trainer, account_interrupted_attempt,
                     add_minutes, latest_metrics, machine_description,
                     read_curve, reproducible_env, run)
from .settings import load_study
from .stats import gap_share, paired_t, summarize

__all__ = [
    'MEASURES', 'MINUTES', 'RECORD', 'RESULTS', 'ROOT', 'STARTED',
    'TIMINGS', 'Experiment', 'Ledger', 'ProtocolError',
    'Run', 'Scores', 'Setting', 'Step', 'Trainer',
    'account_interrupted_attempt', 'add_minutes', 'best_checkpoint',
    'best_checkpoint_file', 'cache_command', 'cache_name', 'check_gate',
    'choose_teacher', 'compare_records', 'count_images', 'family_sources',
    'final_methods', 'find_test_sets', 'format_plan', 'format_rerun',
    'gap_share', 'grid_runs', 'grid_summary', 'latest_metrics', 'load_study',
    'machine_description', 'paired_t', 'plan_caches', 'plan_steps',
    'plan_test_sets', 'plot', 'protocol_config', 'protocol_settings',
    'read_curve', 'read_json', 'recorded_selection', 'reported_sets',
    'reproducible_env', 'results_summary', 'run', 'run_study',
    'select_setting', 'setting_label', 'setting_slug', 'steps_done',
    'steps_left', 'summarize', 'teacher_checkpoint', 'teacher_sources',
    'test_config', 'tested_sets', 'trained_on', 'untested_sets',
    'write_json', 'write_report'
]
