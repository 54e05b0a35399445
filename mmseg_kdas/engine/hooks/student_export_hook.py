"""Write a student-only checkpoint next to each distiller checkpoint."""
import os
import os.path as osp
from typing import Dict, List

from mmengine.config import Config
from mmengine.dist import master_only
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from mmseg_kdas.models.distillers.export import (student_checkpoint,
                                                 student_config,
                                                 with_one_test_pipeline)
from mmseg_kdas.utils.atomic import atomic_torch_save, atomic_write_text
from mmseg_kdas.utils.checkpoint_file import load_weights_only

__all__ = ['StudentExportHook', 'with_one_test_pipeline']


@HOOKS.register_module()
class StudentExportHook(Hook):
    """Export the student of a KDAS run as a plain mmseg checkpoint.

    mmengine 0.10 has no ``after_save_checkpoint`` stage, so this hook runs
    with the lowest priority right after the stages in which
    :class:`~mmengine.hooks.CheckpointHook` saves (after each training
    iteration and epoch, after validation for the best checkpoint, after
    training). Each checkpoint the runner has recorded as saved
    (``last_ckpt`` and ``best_ckpt*`` in its message hub) that has no
    up-to-date export gets one: ``iter_100.pth`` -> ``iter_100_student.pth``
    holding the student's weights alone (no teacher, no SGM adapter, no
    optimizer state) and, as ``meta['cfg']``, the student's config. That
    config is also written once as ``<work_dir>/student_config.py``, so
    ``mmseg.apis.init_model('student_config.py', 'iter_100_student.pth')``
    or ``MMSegInferencer`` load the student directly, and
    ``tools/test.py`` evaluates it as the run did: a ``ConcatDataset`` test
    set (several test sets in one pass) gets the one pipeline that
    ``MMSegInferencer`` reads (see :func:`with_one_test_pipeline`). Exports
    whose source checkpoint has been deleted (``max_keep_ckpts``) are
    deleted too. Both files are written atomically (a killed or failed
    write never leaves a short file under the final name).
    Checkpoints are read back weights-only, so the run needs
    :class:`~mmseg_kdas.engine.PlainCheckpointHook` (``tools/train.py`` adds
    it).

    Args:
        suffix (str): Appended to the checkpoint's stem.
            Defaults to '_student'.
        config_name (str): File name of the student config in the work
            directory. Defaults to 'student_config.py'.
    """

    priority = 'LOWEST'

    def __init__(self,
                 suffix: str = '_student',
                 config_name: str = 'student_config.py') -> None:
        if not suffix:
            raise ValueError('suffix must be a non-empty string')
        if not config_name.endswith('.py'):
            raise ValueError(
                f'config_name must end with .py, got {config_name!r}')
        self.suffix = suffix
        self.config_name = config_name
        self._exports: Dict[str, str] = {}
        self._cfg = None

    def before_train(self, runner) -> None:
        """Check the setup, derive and write the student config."""
        from mmseg_kdas.engine.checkpoint import PlainCheckpointHook
        if not any(isinstance(h, PlainCheckpointHook) for h in runner.hooks):
            raise RuntimeError(
                'StudentExportHook reads the saved checkpoints back '
                'weights-only, which needs PlainCheckpointHook: add '
                "dict(type='PlainCheckpointHook') to custom_hooks (or train "
                'with tools/train.py, which does)')
        self._write_config(runner)

    def _student_config(self, runner) -> Config:
        cfg = student_config(runner.cfg)
        dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
        if dataset and 'pipeline' not in dataset:
            runner.logger.warning(
                f'the test set of {self.config_name} ({dataset.get("type")}) '
                'has no pipeline of its own (test_dataloader.dataset.'
                'pipeline), so MMSegInferencer cannot read the config; a '
                'ConcatDataset gets one when its data sets share one '
                'pipeline')
        return cfg

    @master_only
    def _write_config(self, runner) -> None:
        self._cfg = self._student_config(runner)
        atomic_write_text(
            osp.join(runner.work_dir, self.config_name),
            self._cfg.pretty_text)

    def export_path(self, checkpoint_path: str) -> str:
        """Path of the student export of ``checkpoint_path``."""
        stem, ext = osp.splitext(checkpoint_path)
        return f'{stem}{self.suffix}{ext or ".pth"}'

    def _saved_checkpoints(self, runner) -> List[str]:
        info = runner.message_hub.runtime_info
        return [
            value for key, value in info.items()
            if (key == 'last_ckpt' or key.startswith('best_ckpt'))
            and isinstance(value, str) and not value.endswith(
                f'{self.suffix}.pth')
        ]

    @master_only
    def _export_new(self, runner) -> None:
        if self._cfg is None:
            self._cfg = self._student_config(runner)
        for src in self._saved_checkpoints(runner):
            if not osp.isfile(src):
                continue
            dst = self.export_path(src)
            if osp.isfile(dst) and osp.getmtime(dst) >= osp.getmtime(src):
                continue
            checkpoint = load_weights_only(src, map_location='cpu')
            atomic_torch_save(student_checkpoint(checkpoint, self._cfg), dst)
            self._exports[src] = dst
            runner.logger.info(f'student checkpoint saved to {dst}')
        for src, dst in list(self._exports.items()):
            if not osp.exists(src):
                if osp.isfile(dst):
                    os.remove(dst)
                del self._exports[src]

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        self._export_new(runner)

    def after_train_epoch(self, runner) -> None:
        self._export_new(runner)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._export_new(runner)

    def after_train(self, runner) -> None:
        self._export_new(runner)
