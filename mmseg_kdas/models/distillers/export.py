"""Student-only checkpoints and configs from KDAS distiller runs."""
import copy
from typing import Optional

from mmengine.config import Config

from mmseg_kdas.utils.checkpoint_file import StateDict, extract_state_dict
from mmseg_kdas.utils.model_config import load_model_config

# Hooks and constructors that only make sense around a distiller.
_DISTILLER_ONLY = ('DistillWeightWarmupHook', 'StudentExportHook',
                   'KDASOptimWrapperConstructor')


def student_state_dict(state_dict: dict,
                       prefix: str = 'student.') -> StateDict:
    """Keep the student's entries of a distiller state dict, unprefixed.

    Args:
        state_dict (dict): State dict of a :class:`KDASDistiller`, or a
            checkpoint holding one (see
            :func:`~mmseg_kdas.utils.checkpoint_file.extract_state_dict`).
        prefix (str): Prefix of the student's keys. Defaults to 'student.'.

    Returns:
        OrderedDict: The student's state dict, loadable into the student
        segmentor (teacher and SGM adapters are dropped).

    Raises:
        StateDictMismatchError: A ``KeyError``, if no key starts with
            ``prefix``.
    """
    return extract_state_dict(state_dict, 'not a KDASDistiller checkpoint',
                              prefix)


def _is_concat(dataset: dict) -> bool:
    kind = dataset.get('type')
    return isinstance(kind, str) and kind.split('.')[-1] == 'ConcatDataset'


def with_one_test_pipeline(cfg: Config) -> Config:
    """Give a concatenated test set the one pipeline inferencers read.

    ``MMSegInferencer`` (and ``--tta`` of ``tools/test.py``) take the test
    pipeline from ``test_dataloader.dataset.pipeline``, which a
    ``ConcatDataset`` -- the five test sets of the PraNet protocol -- does
    not have. When its data sets share one pipeline, the test set becomes
    mmseg's ``MultiImageMixDataset`` around the same ``ConcatDataset`` with
    the pipeline moved onto the wrapper. The wrapper runs the pipeline on
    each sample of the concatenation (it mixes images only for transforms
    that ask for other samples, which a test pipeline has none of): the
    samples, their order and their test sets stay the same, so
    ``tools/test.py`` still reports every test set, and the inferencer
    finds the pipeline.

    Args:
        cfg (Config): A model config.

    Returns:
        Config: A copy of ``cfg``, with the test set rewritten when it is a
        ``ConcatDataset`` whose data sets have one common pipeline, and
        unchanged otherwise.

    Example:
        >>> cfg = Config(dict(test_dataloader=dict(dataset=dict(
        ...     type='ConcatDataset',
        ...     datasets=[dict(type='PolypDataset', test_set=name,
        ...                    pipeline=[dict(type='LoadImageFromFile')])
        ...               for name in ('Kvasir', 'ETIS')]))))
        >>> test_set = with_one_test_pipeline(cfg).test_dataloader.dataset
        >>> test_set.type, test_set.pipeline
        ('MultiImageMixDataset', [{'type': 'LoadImageFromFile'}])
        >>> [d.test_set for d in test_set.dataset.datasets]
        ['Kvasir', 'ETIS']
    """
    cfg = copy.deepcopy(cfg)
    loader = cfg.get('test_dataloader')
    dataset = loader.get('dataset') if loader else None
    if not dataset or not _is_concat(dataset):
        return cfg
    datasets = dataset.get('datasets') or []
    pipelines = [d.get('pipeline') for d in datasets]
    if not pipelines or pipelines[0] is None or any(
            p != pipelines[0] for p in pipelines):
        return cfg
    inner = [{k: v for k, v in d.items() if k != 'pipeline'} for d in datasets]
    loader.dataset = dict(
        type='MultiImageMixDataset',
        dataset=dict(dataset, datasets=inner),
        pipeline=pipelines[0])
    return cfg


def student_config(cfg: Config) -> Config:
    """Turn a KDAS run config into the student's own mmseg config.

    The data pipelines, evaluators and runtime settings are kept; ``model``
    becomes the student (with the distiller's data preprocessor when the
    student has none) and distiller-only hooks and the distiller's optimizer
    constructor are removed, and so are ``resume`` and ``load_from`` (they
    name distiller checkpoints). A concatenated test set gets the one
    pipeline inferencers read (:func:`with_one_test_pipeline`).

    Args:
        cfg (Config): Config whose ``model`` is a ``KDASDistiller``.

    Returns:
        Config: A new config, e.g. for ``mmseg.apis.init_model``.
    """
    cfg = copy.deepcopy(cfg)
    model = cfg.get('model')
    if model is None or model.get('type') != 'KDASDistiller':
        raise ValueError('student_config needs a config whose model is a '
                         'KDASDistiller, got model type '
                         f"{None if model is None else model.get('type')}")
    student = load_model_config(model['student'], 'student')
    if student.get('data_preprocessor') is None and model.get(
            'data_preprocessor') is not None:
        student['data_preprocessor'] = copy.deepcopy(
            model['data_preprocessor'])
    cfg.model = student
    # the run's own resume / load_from point at distiller checkpoints
    cfg.resume = False
    cfg.load_from = None
    if cfg.get('custom_hooks'):
        cfg.custom_hooks = [
            hook for hook in cfg.custom_hooks
            if hook.get('type') not in _DISTILLER_ONLY
        ]
    optim_wrapper = cfg.get('optim_wrapper')
    if optim_wrapper is not None and optim_wrapper.get(
            'constructor') in _DISTILLER_ONLY:
        optim_wrapper.pop('constructor')
    return with_one_test_pipeline(cfg)


def student_checkpoint(checkpoint: dict,
                       cfg: Optional[Config] = None) -> dict:
    """A student-only mmseg checkpoint from a distiller checkpoint.

    Args:
        checkpoint (dict): A checkpoint saved by the runner of a KDAS run
            (``state_dict`` and ``meta``), or a bare distiller state dict.
        cfg (Config, optional): The student config (see
            :func:`student_config`), stored as ``meta['cfg']`` text so that
            inferencers can rebuild the model. Defaults to None.

    Returns:
        dict: ``{'meta': ..., 'state_dict': ...}`` without teacher keys,
        optimizer or message-hub state.
    """
    meta = dict(checkpoint.get('meta', {})) if 'state_dict' in checkpoint \
        else {}
    meta.pop('cfg', None)
    if cfg is not None:
        meta['cfg'] = cfg.pretty_text
    return dict(meta=meta, state_dict=student_state_dict(checkpoint))
