"""The KD study on real polyp images, with one selection protocol.

``tools/analysis_tools/polyp_experiment.py`` runs it (usage: its
``--help``). One module per concern: :mod:`.protocol` (runs, grids,
selection rules), :mod:`.configs` (the run configs), :mod:`.plan` (steps,
costs, what is left), :mod:`.ledger` (records, digests), :mod:`.runner`
(commands, resume), :mod:`.stats` (paired t, share of the gap),
:mod:`.report` (tables, plots, ``results.json``), :mod:`.experiment`
(the steps on one work dir) and :mod:`.cards` (the configs' model cards
from ``results.json``; ``tools/analysis_tools/model_cards.py``).

Everything trains from scratch (no pretrained weights are reachable
offline) on ``DATA_ROOT`` in the PraNet layout, on the training images
that are not in the validation split (``PolypDataset(split=
'train-minus-val')``, 1,300 of the 1,450; the split is
``mmseg_kdas/datasets/splits/pranet_val.txt``), and is validated on the
split (``'PraNet-val'``, 150 images). The test sets (every set under
``TestDataset/``) are evaluated at the very end, on the chosen models only:
no choice depends on them. The stages, each skipped when done:

1. **Teacher.** Polyp-PVT on PVTv2-B2, the first of ``--teacher-seeds``,
   for ``--teacher-iters``, validated every ``--teacher-val-interval``;
   its checkpoint is the one of its best validation mean Dice. It is the
   teacher (fixed before any run: no choice among seeds).
2. **Gate.** The plain student (Polyp-PVT on PVTv2-B0, seed 0): students
   are distilled only from a teacher at least ``--gate-margin`` ahead of
   it on validation (else the tool stops, naming both numbers).
3. **Teacher caches.** ``tools/cache_teacher.py`` runs the teacher once
   per set of maps the KD methods read (the decode-head outputs for
   KDAS, KDAS-ref, pixel KD and CWD; the backbone stages for AT); every KD
   student then trains from the cache at about a plain run's cost
   (``--no-teacher-cache``: the teacher runs online).
4. **Grid.** Every tunable method, seed 0, every setting of its grid
   (:data:`GRIDS`, at most four, fixed before the runs); the setting with
   the best validation mean Dice at the last iteration wins (the first
   listed on a tie; a run that diverged is never chosen).
5. **Agreement.** The other teacher seeds, trained the same way: every
   run's best validation mean Dice must lie within ``--teacher-tolerance``
   of the others (else the tool stops, naming each), before the final
   stage is spent on the teacher. ``--accept-teacher-disagreement``
   continues from the teacher all the same, and the report says that the
   check failed and by how much.
6. **Final.** The methods of :func:`final_methods` (plain student, KDAS
   at the paper's setting and tuned, KDAS-ref, tuned pixel KD, CWD and AT,
   and the paper's ablation: L_AT alone, L_SGM alone), every seed of
   ``--seeds`` (a grid run is the seed-0 run of its setting), each
   evaluated at its last iteration with ``tools/test.py`` and
   :class:`PolypMetric` on every test set, the students as exported, alone.

All runs share one protocol: ``--size`` x ``--size`` images, multi-scale
0.75 / 1 / 1.25 one rate per iteration in turn, binarised masks, batch
``--batch-size``, AdamW at ``--lr`` with the recipe's weight decay and
clipping, and a cosine decay of the learning rate to 0 over the run (so that
the last iterate is a converged one, not a noisy sample of a constant-rate
run; the shipped full-scale configs keep the reference's constant rate).

The plan, with the estimated minutes of every stage (:data:`COST`), is
printed first (``--dry-run``: only that). Writes to the work dir
``protocol.json`` (a rerun with other protocol settings is refused),
``runs/<method>/<setting>/seed<n>/`` (config, checkpoints, logs,
``record.json``), ``teacher_cache/``, ``selection.json``, ``results.md``
(teachers, gate, grids, then per test set: mean +- std over seeds, per-seed
paired differences to the plain student with their paired t, and the share
of the teacher's lead closed, where the teacher leads), ``results.json``
(the same figures as data; ``tools/analysis_tools/model_cards.py`` writes
the configs' READMEs and metafiles from it) and ``results_<test set>.png``.
An interrupted run resumes from its last checkpoint (the reported training
time adds up every attempt). Subprocesses run this checkout's code
(``PYTHONPATH``), whatever is installed, on pinned CPU code paths and
``--threads`` threads (:func:`reproducible_env`), so that a run trained
again ends with the same weights.

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
from .plan import (COST, Step, count_images, find_test_sets, format_plan,
                   plan_steps, plan_test_sets, recorded_selection, steps_done,
                   steps_left)
from .protocol import (DEFAULTS, FAMILIES, GRIDS, KDAS_PAPER, MEASURES, RATES,
                       RESULTS, ROOT, TEACHER, TIMINGS, VAL_KEY, VAL_SET,
                       ProtocolError, Run, Scores, Setting, best_checkpoint,
                       best_checkpoint_file, check_gate, choose_teacher,
                       final_methods, grid_runs, select_setting, setting_label,
                       setting_slug, teacher_checkpoint)
from .report import (grid_summary, plot, reported_sets, results_summary,
                     trained_on, write_report)
from .runner import (MINUTES, STARTED, Trainer, account_interrupted_attempt,
                     add_minutes, latest_metrics, machine_description,
                     read_curve, reproducible_env, run)
from .stats import gap_share, paired_t, summarize

__all__ = [
    'COST', 'DEFAULTS', 'FAMILIES', 'GRIDS', 'KDAS_PAPER', 'MEASURES',
    'MINUTES', 'RATES', 'RECORD', 'RESULTS', 'ROOT', 'STARTED', 'TEACHER',
    'TIMINGS', 'VAL_KEY', 'VAL_SET', 'Experiment', 'Ledger', 'ProtocolError',
    'Run', 'Scores', 'Setting', 'Step', 'Trainer',
    'account_interrupted_attempt', 'add_minutes', 'best_checkpoint',
    'best_checkpoint_file', 'cache_command', 'cache_name', 'check_gate',
    'choose_teacher', 'compare_records', 'count_images', 'family_sources',
    'final_methods', 'find_test_sets', 'format_plan', 'format_rerun',
    'gap_share', 'grid_runs', 'grid_summary', 'latest_metrics',
    'machine_description', 'paired_t', 'plan_caches', 'plan_steps',
    'plan_test_sets', 'plot', 'protocol_config', 'protocol_settings',
    'read_curve', 'read_json', 'recorded_selection', 'reported_sets',
    'reproducible_env', 'results_summary', 'run', 'run_study',
    'select_setting', 'setting_label', 'setting_slug', 'steps_done',
    'steps_left', 'summarize', 'teacher_checkpoint', 'teacher_sources',
    'test_config', 'tested_sets', 'trained_on', 'untested_sets',
    'write_json', 'write_report'
]
