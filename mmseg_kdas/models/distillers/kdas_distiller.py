"""The KDAS distiller: a frozen teacher segmentor teaches a student one."""
import copy
import logging
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import ModuleList
from mmseg.models.segmentors import BaseSegmentor
from mmseg.registry import MODELS
from mmseg.utils import (ConfigType, OptConfigType, OptMultiConfig,
                         OptSampleList, SampleList, add_prefix)
from torch import Tensor

from ...teacher_cache.reader import TeacherCache
from ...utils.checkpoint_file import format_keys
from ...utils.map_sources import Source, parse_pairs, select_map
from ...utils.model_config import ModelConfig, load_model_config
from ..utils import in_float32
from .segmentors import (build_segmentor, check_preprocessing,
                         load_teacher_weights)

# Not a mismatch of the maps of a pair: passed on as it is.
_OUT_OF_MEMORY = getattr(torch.cuda, 'OutOfMemoryError', ())


def _check_weights(alpha: float, at_weight: float,
                   sgm_weight: float) -> None:
    """The share and weights of the distillation terms."""
    if not 0 <= alpha <= 1:
        raise ValueError(f'alpha must be in [0, 1], got {alpha}')
    if at_weight < 0 or sgm_weight < 0:
        raise ValueError('at_weight and sgm_weight must be >= 0, got '
                         f'{at_weight} and {sgm_weight}')


@MODELS.register_module()
class KDASDistiller(BaseSegmentor):
    """KDAS: knowledge distillation via attention supervision.

    `KDAS: Knowledge Distillation via Attention Supervision Framework for
    Polyp Segmentation <https://arxiv.org/abs/2312.08555>`_ (Trinh et al.,
    ICME 2024).

    A frozen teacher segmentor teaches a student segmentor with two terms
    added to the student's own segmentation loss::

        L_KDAS = (1 - alpha) * L_seg
                 + alpha * m * (at_weight * L_AT + sgm_weight * L_SGM)

    where ``L_AT`` (:class:`AttentionSupervisionLoss`) and ``L_SGM``
    (:class:`SGMNeck` + :class:`SymmetricKDLoss`) are each summed over their
    configured (student map, teacher map) pairs, and ``m`` is
    :attr:`kd_multiplier` (1 unless a :class:`DistillWeightWarmupHook` ramps
    it). Each term is logged on its own: the student's losses under
    ``seg.`` (e.g. ``seg.decode.loss_ce``, already multiplied by
    ``1 - alpha``; accuracies pass through unscaled) and one
    ``loss_at_{i}`` / ``loss_sgm_{i}`` per pair (already multiplied by
    ``alpha * m * weight``), so that their sum is ``L_KDAS``.

    Teacher and student are mmseg ``EncoderDecoder``-style segmentors
    (``extract_feat`` + one ``decode_head`` whose ``forward`` returns a
    tensor or a list of tensors, and whose ``loss_by_feat`` computes its
    losses). The teacher is loaded from ``teacher_ckpt``, frozen
    (``requires_grad=False``), kept wholly in eval mode (dropout, drop-path
    and BatchNorm alike, whatever :meth:`train` is called with), run under
    ``torch.no_grad()`` and computes no loss. Use
    :class:`KDASOptimWrapperConstructor` so that its parameters are not even
    handed to the optimizer. Prediction and tensor mode run the student
    alone. The distillation terms are computed in float32 with autocast
    off (:func:`~mmseg_kdas.models.utils.in_float32`), so that
    mixed precision (``--amp``) cannot overflow them; a pair whose maps do
    not fit its term is an error naming the pair and both shapes.

    Distilled maps are chosen per pair by a *source*: an int indexes the
    decode head's output (``[P1, P2]`` for Polyp-PVT's head; ``0`` for heads
    returning one tensor), a str names a module of the segmentor, whose
    output is recorded by a forward hook registered at construction
    (``'backbone:3'`` picks item 3 of a module returning a tuple).

    1. ``loss`` (training):

    .. code:: text

     loss(): _teacher_maps() -> _student_forward()
             -> seg losses * (1 - alpha) + _distillation_losses()
     _teacher_maps(): [no_grad] teacher.extract_feat()
                         -> teacher.decode_head()
                      or, with teacher_cache: teacher_cache.lookup()
     _student_forward(): student.extract_feat() -> student.decode_head()
                         -> student.decode_head.loss_by_feat()
                         -> student auxiliary-head losses (optional)
     _distillation_losses(): per pair, [float32, autocast off]
                         loss_at(student map, teacher map) per at pair;
                         loss_sgm(*sgm_necks[i](student map, teacher map))
                         per sgm pair

    2. ``predict``: ``student.predict()`` (its ``inference()`` and
    ``postprocess_result()``).

    3. ``_forward`` (tensor mode): ``student._forward()``.

    Args:
        teacher (str | dict): Teacher segmentor config, or the path of a
            config file whose ``model`` is the teacher.
        student (str | dict): Student segmentor config or config file path.
        teacher_ckpt (str, optional): Teacher checkpoint, loaded
            weights-only on the CPU by :func:`load_teacher_weights`; keys
            missing, unexpected or of another shape are an error that names
            them. None leaves the teacher with the random weights it is
            built with, its ``init_cfg`` unapplied (tests and smoke runs
            only; a warning is logged). Defaults to None.
        alpha (float): Share of the distillation terms, in [0, 1].
            Defaults to 0.3.
        at_weight (float): Weight ``w_AT`` of ``L_AT``. 0 disables the term.
            Defaults to 1.0.
        sgm_weight (float): Weight ``w_SGM`` of ``L_SGM``. 0 disables the
            term. Defaults to 1.0.
        at_pairs (Sequence[dict]): ``dict(student=source, teacher=source)``
            per attention-supervision term. Defaults to P1 and P2:
            ``(dict(student=0, teacher=0), dict(student=1, teacher=1))``.
        sgm_pairs (Sequence[dict]): Pairs for the SGM terms; each may carry a
            ``neck`` config (default ``dict(type='SGMNeck')``).
            Defaults to P1: ``(dict(student=0, teacher=0),)``.
        loss_at (dict): Config of the attention-supervision loss.
            Defaults to ``dict(type='AttentionSupervisionLoss',
            temperature=2.0)``.
        loss_sgm (dict): Config of the SGM loss.
            Defaults to ``dict(type='SymmetricKDLoss', loss_type='mse')``.
        teacher_cache (str, optional): A folder written by
            ``tools/cache_teacher.py``: the teacher's maps are read from it
            (:class:`~mmseg_kdas.teacher_cache.TeacherCache`) and the
            teacher is neither built, loaded nor run.
            The cache must match the teacher config, ``teacher_ckpt`` (when
            given; checked by content hash), the preprocessing and the
            consumed sources (checked here) and the training data (checked
            by :class:`~mmseg_kdas.teacher_cache.TeacherCacheHook` before
            training): every mismatch is an error that names it. Defaults to
            None (the online teacher).
        data_preprocessor (dict, optional): Preprocessor of the distiller;
            None uses the student's. Defaults to None.
        init_cfg (dict or list[dict], optional): Initialization config.
            Defaults to None.
    """

    def __init__(self,
                 teacher: ModelConfig,
                 student: ModelConfig,
                 teacher_ckpt: Optional[str] = None,
                 alpha: float = 0.3,
                 at_weight: float = 1.0,
                 sgm_weight: float = 1.0,
                 at_pairs: Sequence[dict] = (dict(student=0, teacher=0),
                                             dict(student=1, teacher=1)),
                 sgm_pairs: Sequence[dict] = (dict(student=0, teacher=0), ),
                 loss_at: ConfigType = dict(
                     type='AttentionSupervisionLoss', temperature=2.0),
                 loss_sgm: ConfigType = dict(
                     type='SymmetricKDLoss', loss_type='mse'),
                 teacher_cache: Optional[str] = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        _check_weights(alpha, at_weight, sgm_weight)
        teacher_cfg = load_model_config(teacher, 'teacher')
        student_cfg = load_model_config(student, 'student')
        if data_preprocessor is None:
            data_preprocessor = copy.deepcopy(
                student_cfg.get('data_preprocessor'))
        check_preprocessing(data_preprocessor, teacher_cfg)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        #: The config of :attr:`data_preprocessor` (the student's if None).
        self.preprocessor_cfg = copy.deepcopy(data_preprocessor)

        self.student = build_segmentor(student_cfg, 'student')
        self.teacher_ckpt = teacher_ckpt
        self.alpha = alpha
        self.at_weight = at_weight
        self.sgm_weight = sgm_weight
        #: Multiplier of the distillation terms, set by a warm-up hook.
        self.kd_multiplier = 1.0
        self._build_distillation_terms(at_pairs, sgm_pairs, loss_at,
                                       loss_sgm)
        #: The teacher maps the active pairs consume.
        self.teacher_sources: List[Source] = sorted(
            {pair['teacher']
             for pair in self._active_pairs()},
            key=lambda source: source.key)
        #: The cache the teacher's maps come from, or None (online teacher).
        self.teacher_cache: Optional[TeacherCache] = None
        if teacher_cache is not None:
            self.teacher = None
            self.teacher_cache = TeacherCache(teacher_cache)
            self.teacher_cache.check_model(
                teacher_cfg, teacher_ckpt, self.preprocessor_cfg,
                [source.key for source in self.teacher_sources])
            print_log(
                f'KDASDistiller: teacher maps from {self.teacher_cache}; '
                'the teacher is neither built nor run',
                logger='current')
        else:
            # Built on a fork of the random state: its weights come from
            # teacher_ckpt, and the student then initialises alike with
            # the online teacher and with a cache (same seed, same student).
            with torch.random.fork_rng(devices=[]):
                self.teacher = build_segmentor(teacher_cfg, 'teacher')
            self._load_and_freeze_teacher()
        self._setup_recording()

    def _load_and_freeze_teacher(self) -> None:
        """Load ``teacher_ckpt``; freeze the teacher and keep it in eval."""
        if self.teacher_ckpt is not None:
            load_teacher_weights(self.teacher, self.teacher_ckpt)
        else:
            print_log(
                'KDASDistiller: no teacher_ckpt given; the teacher keeps the '
                'random weights it was built with (tests and smoke runs '
                'only)',
                logger='current',
                level=logging.WARNING)
        # The runner's init_weights() must not overwrite the teacher (nor
        # load its backbone's pretrained init_cfg).
        self.teacher._is_init = True
        self.teacher.requires_grad_(False)
        self.teacher.eval()

    def _build_distillation_terms(self, at_pairs: Sequence[dict],
                                  sgm_pairs: Sequence[dict],
                                  loss_at: ConfigType,
                                  loss_sgm: ConfigType) -> None:
        """Parse the pairs; build the losses and one SGM neck per pair."""
        self.at_pairs = parse_pairs(at_pairs, 'at_pairs')
        self.sgm_pairs = parse_pairs(sgm_pairs, 'sgm_pairs', ('neck', ))
        self.with_at = (
            self.alpha > 0 and self.at_weight > 0 and bool(self.at_pairs))
        self.with_sgm = (
            self.alpha > 0 and self.sgm_weight > 0 and bool(self.sgm_pairs))
        self.loss_at = MODELS.build(loss_at) if self.with_at else None
        if self.with_sgm:
            self.loss_sgm = MODELS.build(loss_sgm)
            self.sgm_necks = ModuleList([
                MODELS.build(pair.get('neck', dict(type='SGMNeck')))
                for pair in self.sgm_pairs
            ])
        else:
            self.loss_sgm = None
            self.sgm_necks = None

    def _active_pairs(self) -> List[dict]:
        """The pairs whose terms are computed."""
        return (self.at_pairs if self.with_at else []) + (
            self.sgm_pairs if self.with_sgm else [])

    def _setup_recording(self) -> None:
        """Forward hooks recording the modules the active pairs name."""
        self._recording = False
        self._student_records: Dict[str, Any] = {}
        self._teacher_records: Dict[str, Any] = {}
        pairs = self._active_pairs()
        self._register_record_hooks(self.student, pairs, 'student',
                                    self._student_records)
        if self.teacher is not None:
            self._register_record_hooks(self.teacher, pairs, 'teacher',
                                        self._teacher_records)

    def _register_record_hooks(self, model: nn.Module, pairs: List[dict],
                               role: str, records: Dict[str, Any]) -> None:
        """Record the outputs of the modules the pairs name in ``model``."""
        names = {pair[role].module for pair in pairs} - {None}
        modules = dict(model.named_modules())
        for name in sorted(names):
            if name not in modules:
                raise KeyError(
                    f'the {role} has no module named {name!r}; names come '
                    f'from {role}.named_modules(), e.g. '
                    f"{format_keys([n for n in modules if n][:20], 8)}")
            modules[name].register_forward_hook(
                partial(self._record, records, name))

    def _record(self, records: Dict[str, Any], name: str, module: nn.Module,
                args: Any, output: Any) -> None:
        """Forward hook: keep ``output`` while :meth:`loss` runs."""
        if not self._recording:
            return
        if name in records:
            raise RuntimeError(
                f'module {name!r} ran more than once in one forward pass; '
                'distill a module that runs once')
        records[name] = output

    def train(self, mode: bool = True) -> 'KDASDistiller':
        """Set the student's mode; the teacher always stays in eval mode."""
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def extract_feat(self, inputs: Tensor) -> List[Tensor]:
        """Extract the student's features."""
        return self.student.extract_feat(inputs)

    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: List[dict]) -> Tensor:
        """Encode and decode images with the student."""
        return self.student.encode_decode(inputs, batch_img_metas)

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """Student segmentation losses plus the KDAS distillation terms.

        Args:
            inputs (Tensor): Input images ``(N, C, H, W)``.
            data_samples (list[:obj:`SegDataSample`]): The seg data samples,
                with ``gt_sem_seg``.

        Returns:
            dict[str, Tensor]: ``seg.*`` student losses (scaled by
            ``1 - alpha``) and ``loss_at_{i}``, ``loss_sgm_{i}`` terms.
        """
        self._student_records.clear()
        self._teacher_records.clear()
        self._recording = True
        try:
            teacher_maps: Dict[str, Tensor] = {}
            if self.with_at or self.with_sgm:
                teacher_maps = self._teacher_maps(inputs, data_samples)
            student_out, seg_losses = self._student_forward(
                inputs, data_samples)
        finally:
            self._recording = False
        try:
            losses = dict()
            for name, value in add_prefix(seg_losses, 'seg').items():
                if 'loss' in name:
                    value = self._scale(value, 1 - self.alpha)
                losses[name] = value
            losses.update(
                self._distillation_losses(student_out, teacher_maps))
        finally:
            self._student_records.clear()
            self._teacher_records.clear()
        return losses

    def _distillation_losses(
            self, student_out: Any,
            teacher_maps: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """``loss_at_{i}`` and ``loss_sgm_{i}``, weighted, in float32.

        Every term (the SGM neck included) runs through :func:`in_float32`:
        in float32 with autocast off, so that ``--amp`` cannot overflow it.

        Args:
            student_out: The student's decode-head output.
            teacher_maps: The teacher's maps, by :attr:`Source.key`
                (:meth:`_teacher_maps`).

        Returns:
            dict[str, Tensor]: One scalar per configured pair, multiplied by
            ``alpha * kd_multiplier * weight``.
        """
        losses = dict()
        kd_scale = self.alpha * self.kd_multiplier
        if self.with_at:
            for i, pair in enumerate(self.at_pairs):
                term = self._pair_term('at_pairs', i, pair, self.loss_at,
                                       student_out, teacher_maps)
                losses[f'{self.loss_at.loss_name}_{i}'] = (
                    kd_scale * self.at_weight * term)
        if self.with_sgm:
            for i, (pair, neck) in enumerate(
                    zip(self.sgm_pairs, self.sgm_necks)):
                term = self._pair_term(
                    'sgm_pairs', i, pair,
                    lambda s, t, neck=neck: self.loss_sgm(*neck(s, t)),
                    student_out, teacher_maps)
                losses[f'{self.loss_sgm.loss_name}_{i}'] = (
                    kd_scale * self.sgm_weight * term)
        return losses

    def _pair_term(self, role: str, index: int, pair: dict,
                   term: Callable[[Tensor, Tensor], Tensor],
                   student_out: Any,
                   teacher_maps: Dict[str, Tensor]) -> Tensor:
        """One distillation term; an error names the pair and both maps."""
        student_map = select_map(pair['student'], student_out,
                                 self._student_records, 'student')
        teacher_map = teacher_maps[pair['teacher'].key]
        try:
            return in_float32(term, student_map, teacher_map)
        except (ValueError, RuntimeError) as err:
            if isinstance(err, _OUT_OF_MEMORY):
                raise
            raise ValueError(
                f'{role}[{index}] (student {pair["student"]}, teacher '
                f'{pair["teacher"]}): the student map of shape '
                f'{tuple(student_map.shape)} and the teacher map of shape '
                f'{tuple(teacher_map.shape)} do not fit the term: '
                f'{err}') from err

    def _teacher_maps(self, inputs: Tensor,
                      data_samples: SampleList) -> Dict[str, Tensor]:
        """The teacher's maps of :attr:`teacher_sources`, by key.

        From :attr:`teacher_cache` (by each sample's ``img_path`` and the
        batch's size) when there is one, otherwise from the frozen teacher
        run under ``no_grad``.
        """
        keys = [source.key for source in self.teacher_sources]
        if self.teacher_cache is not None:
            if not self.teacher_cache.data_checked:
                raise RuntimeError(
                    f'the teacher cache {self.teacher_cache.root} has not '
                    'been checked against the training data: train with '
                    "tools/train.py, or add dict(type='TeacherCacheHook') to "
                    'custom_hooks')
            return self.teacher_cache.lookup(
                [sample.metainfo.get('img_path') for sample in data_samples],
                inputs.shape[-2:], keys, inputs.device)
        with torch.no_grad():
            head_out = self.teacher.decode_head(
                self.teacher.extract_feat(inputs))
        return {
            source.key: select_map(source, head_out, self._teacher_records,
                                   'teacher')
            for source in self.teacher_sources
        }

    def _student_forward(self, inputs: Tensor,
                         data_samples: SampleList) -> tuple:
        """Run the student once; returns its head output and its losses."""
        feats = self.student.extract_feat(inputs)
        head_out = self.student.decode_head(feats)
        losses = add_prefix(
            self.student.decode_head.loss_by_feat(head_out, data_samples),
            'decode')
        if self.student.with_auxiliary_head:
            losses.update(
                self.student._auxiliary_head_forward_train(
                    feats, data_samples))
        return head_out, losses

    @staticmethod
    def _scale(value: Union[Tensor, List[Tensor]],
               factor: float) -> Union[Tensor, List[Tensor]]:
        if isinstance(value, (list, tuple)):
            return [factor * v for v in value]
        return factor * value

    def predict(self,
                inputs: Tensor,
                data_samples: OptSampleList = None) -> SampleList:
        """Predict with the student alone (see ``EncoderDecoder.predict``).

        Args:
            inputs (Tensor): Inputs ``(N, C, H, W)``.
            data_samples (list[:obj:`SegDataSample`], optional): The seg data
                samples, with ``metainfo``.

        Returns:
            list[:obj:`SegDataSample`]: Samples with ``seg_logits`` and
            ``pred_sem_seg``.
        """
        return self.student.predict(inputs, data_samples)

    def _forward(self,
                 inputs: Tensor,
                 data_samples: OptSampleList = None) -> Any:
        """The student's decode-head output, without post-processing."""
        return self.student._forward(inputs, data_samples)
