"""Segment images, folders of images and videos with a predictor.

The engine of ``tools/infer.py``. For every image or video frame it
writes, as soon as it is computed, the mask (PNG, 0 / 255 at the image's
own size; the label map for more than two classes) under ``masks/`` and
optionally the 8-bit probability map under ``probs/`` and an overlay under
``overlays/``. A video also gives ``<name>_overlay.mp4``: every frame with
its overlay and the running frames per second drawn on it.

The stages run at once, each in its own thread, in order, so that
everything around the network overlaps with it: reading (decoding) and
preprocessing; the predictor (the calling thread); postprocessing (the
logits resized once to the image size, the mask) and writing the image
outputs; for a video, the overlay, its caption and the encoding of the
overlay video (OpenCV, NumPy, ONNX Runtime and OpenVINO release the GIL
while they work). The predictor's thread does nothing but run the
network, so the frame rate end to end is bounded by the network's latency
as long as the other stages, together, need less than the cores leave.

An image that cannot be decoded, or a video frame that cannot, is named,
skipped and listed in the returned :class:`InferenceReport` (and in
``summary.json``, written even when the run stops early); what was written
before stays.
"""
import collections
import json
import os
import os.path as osp
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..visualization.polyp_visualizer import _caption
from .backends import Predictor
from .pipeline import (draw_overlay, postprocess, preprocess,
                       probability_to_uint8, read_image)
from .spec import DeploySpec

__all__ = [
    'IMAGE_EXTENSIONS', 'VIDEO_EXTENSIONS', 'input_kind', 'list_images',
    'InferenceReport', 'infer_images', 'infer_video', 'infer'
]

IMAGE_EXTENSIONS = ('.bmp', '.jpeg', '.jpg', '.png', '.tif', '.tiff',
                    '.webp')
VIDEO_EXTENSIONS = ('.avi', '.m4v', '.mkv', '.mov', '.mp4', '.mpeg', '.mpg',
                    '.webm', '.wmv')
#: Consecutive unreadable frames after which a video is taken as ended.
MAX_MISSED_FRAMES = 25
#: Items waiting between two stages.
QUEUE_SIZE = 4


def input_kind(path: str) -> str:
    """``'folder'``, ``'image'`` or ``'video'``, from the path."""
    if osp.isdir(path):
        return 'folder'
    if not osp.isfile(path):
        raise FileNotFoundError(f'input not found: {path}')
    ext = osp.splitext(path)[1].lower()
    if ext in IMAGE_EXTENSIONS:
        return 'image'
    if ext in VIDEO_EXTENSIONS:
        return 'video'
    raise ValueError(f'{path}: not an image ({", ".join(IMAGE_EXTENSIONS)}) '
                     f'nor a video ({", ".join(VIDEO_EXTENSIONS)}) by its '
                     'extension')


def list_images(folder: str) -> List[str]:
    """The image files of a folder (not recursive), sorted by name.

    Raises:
        ValueError: If there is none, or two share a name without their
            extension (their outputs would collide).
    """
    names = sorted(
        n for n in os.listdir(folder)
        if osp.splitext(n)[1].lower() in IMAGE_EXTENSIONS
        and osp.isfile(osp.join(folder, n)))
    if not names:
        raise ValueError(f'{folder}: no image files '
                         f'({", ".join(IMAGE_EXTENSIONS)})')
    stems: Dict[str, str] = {}
    for name in names:
        stem = osp.splitext(name)[0]
        if stem in stems:
            raise ValueError(f'{folder}: {stems[stem]} and {name} would '
                             f'write the same {stem}.png outputs')
        stems[stem] = name
    return [osp.join(folder, n) for n in names]


@dataclass
class InferenceReport:
    """What a run did.

    Attributes:
        written: Images or frames segmented and written.
        failures: ``(name, reason)`` of each skipped image or frame.
        seconds: Wall time from the first read to the last write (model
            loading excluded).
        outputs: Paths of the video files written.
        stage_seconds: Per stage (``read``: decoding and preprocessing,
            ``infer``, ``postprocess``: the map at the image size and the
            image outputs, ``encode``: overlay and video), the wall time
            its thread spent working (not waiting for items).
        stage_cpu_seconds: Per stage, the CPU time of its thread (for
            ``infer`` without the backend's own worker threads): what the
            stage takes from the cores besides the network.
    """
    written: int = 0
    failures: List[Tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    outputs: List[str] = field(default_factory=list)
    stage_seconds: Dict[str, float] = field(default_factory=dict)
    stage_cpu_seconds: Dict[str, float] = field(default_factory=dict)

    def _count(self, stage: str, wall: float, cpu: float) -> None:
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + wall
        self.stage_cpu_seconds[stage] = \
            self.stage_cpu_seconds.get(stage, 0.0) + cpu

    @property
    def fps(self) -> float:
        """Images or frames per second, end to end."""
        return self.written / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        record = asdict(self)
        record['failures'] = [
            dict(name=n, reason=r) for n, r in self.failures
        ]
        record['fps'] = self.fps
        return record


@dataclass
class _Item:
    """An image or frame on its way through the stages."""
    stem: str  # name of its outputs
    label: str  # name in failure reports
    image: Optional[np.ndarray] = None  # BGR, own size
    batch: Optional[np.ndarray] = None  # graph input
    error: Optional[str] = None
    output: Optional[np.ndarray] = None  # graph output
    prob: Optional[np.ndarray] = None  # at the image's size
    mask: Optional[np.ndarray] = None
    overlay: Optional[np.ndarray] = None  # drawn for overlays/


class _Writer:
    """Writes the per-image outputs under ``out_dir``."""

    def __init__(self, out_dir: str, save_prob: bool,
                 save_overlay: bool) -> None:
        self.dirs = dict(masks=osp.join(out_dir, 'masks'))
        if save_prob:
            self.dirs['probs'] = osp.join(out_dir, 'probs')
        if save_overlay:
            self.dirs['overlays'] = osp.join(out_dir, 'overlays')
        for path in self.dirs.values():
            os.makedirs(path, exist_ok=True)

    @staticmethod
    def _imwrite(path: str, img: np.ndarray) -> None:
        if not cv2.imwrite(path, img):
            raise OSError(f'{path}: could not be written')

    @property
    def needs_prob(self) -> bool:
        """Whether the probability maps are written."""
        return 'probs' in self.dirs

    def write(self, item: _Item) -> Optional[np.ndarray]:
        """Write mask (and prob, overlay); return the overlay if drawn."""
        self._imwrite(
            osp.join(self.dirs['masks'], f'{item.stem}.png'), item.mask)
        if 'probs' in self.dirs and item.prob.ndim == 2:
            self._imwrite(
                osp.join(self.dirs['probs'], f'{item.stem}.png'),
                probability_to_uint8(item.prob))
        if 'overlays' in self.dirs:
            overlay = draw_overlay(item.image, item.mask)
            self._imwrite(
                osp.join(self.dirs['overlays'], f'{item.stem}.jpg'), overlay)
            return overlay
        return None


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    """Put unless ``stop`` is set; False if it was."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event):
    """Get unless ``stop`` is set; None if it was."""
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    return None


def _timed(report: InferenceReport, stage: str, fn: Callable, *args):
    """``fn(*args)``, its wall and thread CPU time counted for ``stage``."""
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        return fn(*args)
    finally:
        report._count(stage,
                      time.perf_counter() - wall,
                      time.thread_time() - cpu)


def _run(items: Iterator[_Item], predictor: Predictor,
         stages: Sequence[Tuple[str, Callable[[_Item], None]]],
         report: InferenceReport, bar) -> None:
    """Read (a thread) -> infer (here) -> each of ``stages`` (a thread each).

    Items go through every stage in order; a failed item (``error`` set)
    skips the network and the stages and is counted at the end. An error
    in any stage stops the others and is raised here; what was written
    stays. Each stage's working time goes to ``report``.
    """
    queues = [queue.Queue(QUEUE_SIZE) for _ in range(len(stages) + 1)]
    stop = threading.Event()
    errors: List[BaseException] = []
    items = iter(items)
    done = object()

    def read() -> None:
        try:
            while True:
                item = _timed(report, 'read', next, items, done)
                if item is done:
                    break
                if not _put(queues[0], item, stop):
                    return
        except BaseException as err:  # raised again in the caller
            errors.append(err)
            stop.set()
        _put(queues[0], None, stop)

    def stage(index: int) -> None:
        source = queues[index + 1]
        target = queues[index + 2] if index + 2 < len(queues) else None
        try:
            while True:
                item = _get(source, stop)
                if item is None:
                    break
                if item.error is None:
                    _timed(report, *stages[index], item)
                if target is not None:
                    if not _put(target, item, stop):
                        return
                    continue
                if item.error is None:
                    report.written += 1
                else:
                    report.failures.append((item.label, item.error))
                if bar is not None:
                    bar.update()
            if target is not None:
                _put(target, None, stop)
        except BaseException as err:  # raised again in the caller
            errors.append(err)
            stop.set()

    threads = [threading.Thread(target=read, daemon=True)] + [
        threading.Thread(target=stage, args=(i, ), daemon=True)
        for i in range(len(stages))
    ]
    for thread in threads:
        thread.start()
    try:
        while True:
            item = _get(queues[0], stop)
            if item is None:
                break
            if item.error is None:
                item.output = _timed(report, 'infer', predictor,
                                     item.batch)[0]
                item.batch = None
            if not _put(queues[1], item, stop):
                break
        _put(queues[1], None, stop)
    except BaseException:
        stop.set()
        raise
    finally:
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]


def _postprocess_and_write(writer: '_Writer',
                           spec: DeploySpec) -> Callable[[_Item], None]:
    """The stage after the network: prob and mask at the image size, the
    image outputs written."""

    def run(item: _Item) -> None:
        item.prob, item.mask = postprocess(item.output,
                                           item.image.shape[:2], spec,
                                           with_prob=writer.needs_prob)
        item.output = None
        item.overlay = writer.write(item)

    return run


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from mmengine.utils import ProgressBar
    return ProgressBar(total)


def _image_items(paths: Sequence[str], spec: DeploySpec) -> Iterator[_Item]:
    for path in paths:
        stem = osp.splitext(osp.basename(path))[0]
        try:
            image = read_image(path)
        except (ValueError, OSError, cv2.error) as err:
            # the report names the file already
            yield _Item(stem, path, error=str(err).replace(f'{path}: ', ''))
            continue
        yield _Item(stem, path, image, preprocess([image], spec))


def infer_images(paths: Sequence[str],
                 predictor: Predictor,
                 out_dir: str,
                 save_prob: bool = False,
                 save_overlay: bool = False,
                 progress: bool = True,
                 report: Optional[InferenceReport] = None) -> InferenceReport:
    """Segment image files, one at a time.

    Args:
        paths: Image files (distinct names without extension).
        predictor: The model.
        out_dir: Outputs go to ``masks/``, ``probs/``, ``overlays/`` in it.
        save_prob: Also write the 8-bit probability maps (binary models).
        save_overlay: Also write the overlays (JPEG).
        progress: Show a progress bar with ETA.
        report: Filled as the run goes (a new one by default).

    Returns:
        The report; unreadable files are in ``failures``.
    """
    writer = _Writer(out_dir, save_prob, save_overlay)
    report = InferenceReport() if report is None else report
    start = time.perf_counter()
    try:
        _run(
            _image_items(paths, predictor.spec), predictor,
            [('postprocess', _postprocess_and_write(writer, predictor.spec))],
            report, _progress(len(paths), progress))
    finally:
        report.seconds = time.perf_counter() - start
    return report


def _frame_items(capture, path: str, stem: str, spec: DeploySpec,
                 total: int, rate: Optional[float]) -> Iterator[_Item]:
    """Frames of an open video, with the broken ones as failures.

    A frame's index comes from its time stamp when the frame rate is known
    (decoders may drop a broken frame without a failed read).
    """
    index, missed = 0, 0
    origin = None  # (index, time stamp in ms) of the first decoded frame

    def lost(i: int) -> _Item:
        return _Item(f'{stem}_{i:06d}', f'{path} frame {i}',
                     error='cannot be decoded')

    while True:
        ok, frame = capture.read()
        if not ok or frame is None:
            if index >= total or missed >= MAX_MISSED_FRAMES:
                break
            yield lost(index)
            index, missed = index + 1, missed + 1
            continue
        position = index
        if rate:
            stamp = capture.get(cv2.CAP_PROP_POS_MSEC)
            origin = origin or (index, stamp)
            position = origin[0] + round((stamp - origin[1]) * rate / 1000)
        for i in range(index, position):
            yield lost(i)
        index, missed = max(index, position), 0
        yield _Item(f'{stem}_{index:06d}', f'{path} frame {index}', frame,
                    preprocess([frame], spec))
        index += 1
    for i in range(index, total):  # the container promised more
        yield lost(i)


def infer_video(path: str,
                predictor: Predictor,
                out_dir: str,
                save_prob: bool = False,
                save_overlay: bool = False,
                progress: bool = True,
                fourcc: str = 'mp4v',
                fps_window: int = 30,
                report: Optional[InferenceReport] = None) -> InferenceReport:
    """Segment every frame of a video and write an overlay video.

    Frames are named after their index in the video (``<name>_000042``),
    so a broken frame leaves a gap in the names. A frame that OpenCV
    cannot decode (``read`` fails before the container's frame count, or
    the time stamps jump over it) is reported; after
    :data:`MAX_MISSED_FRAMES` consecutive failures the video is taken as
    ended and its remaining frames are reported too.

    Args:
        path: Video file.
        predictor: The model.
        out_dir: Frame outputs go under it as for :func:`infer_images`; the
            video is ``<out_dir>/<name>_overlay.mp4``.
        save_prob: Also write each frame's 8-bit probability map.
        save_overlay: Also write each frame's overlay as an image.
        progress: Show a progress bar with ETA.
        fourcc: Codec of the output video.
        fps_window: Frames over which the drawn running FPS is measured.
        report: Filled as the run goes (a new one by default).

    Returns:
        The report (``fps``: frames per second end to end, decoding,
        preprocessing, inference, overlay and encoding included).
    """
    stem = osp.splitext(osp.basename(path))[0]
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise ValueError(f'{path}: cannot be opened as a video')
    total = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
    rate = capture.get(cv2.CAP_PROP_FPS)
    rate = rate if rate > 0 else None
    writer = _Writer(out_dir, save_prob, save_overlay)
    report = InferenceReport() if report is None else report
    video_path = osp.join(out_dir, f'{stem}_overlay.mp4')
    report.outputs.append(video_path)
    stamps: collections.deque = collections.deque(maxlen=fps_window)
    videos: List[cv2.VideoWriter] = []

    def encode(item: _Item) -> None:
        overlay = item.overlay
        if overlay is None:
            overlay = draw_overlay(item.image, item.mask)
        item.image = item.overlay = None
        stamps.append(time.perf_counter())
        running = (len(stamps) - 1) / (stamps[-1] - stamps[0]) \
            if len(stamps) > 1 else 0.0
        _caption(overlay, f'{running:.1f} FPS')
        if not videos:
            h, w = overlay.shape[:2]
            video = cv2.VideoWriter(video_path,
                                    cv2.VideoWriter_fourcc(*fourcc),
                                    rate or 25.0, (w, h))
            if not video.isOpened():
                raise OSError(f'{video_path}: OpenCV cannot write a '
                              f'{fourcc!r} video')
            videos.append(video)
        videos[0].write(overlay)

    start = time.perf_counter()
    try:
        _run(
            _frame_items(capture, path, stem, predictor.spec, total, rate),
            predictor,
            [('postprocess', _postprocess_and_write(writer, predictor.spec)),
             ('encode', encode)], report, _progress(total, progress))
    finally:
        report.seconds = time.perf_counter() - start
        capture.release()
        for video in videos:
            video.release()
    return report


def infer(source: str,
          predictor: Predictor,
          out_dir: str,
          save_prob: bool = False,
          save_overlay: bool = False,
          progress: bool = True) -> InferenceReport:
    """Segment an image, a folder of images or a video.

    Writes ``summary.json`` (counts, failures, frames per second) in
    ``out_dir`` at the end, also when the run is interrupted.

    Args:
        source: Image file, folder of images or video file.
        predictor: The model (see
            :func:`~mmseg_kdas.deployment.backends.build_predictor`).
        out_dir: Output folder.
        save_prob: Also write probability maps.
        save_overlay: Also write overlays (images; a video always gets its
            overlay video).
        progress: Show a progress bar with ETA.

    Returns:
        The report.
    """
    kind = input_kind(source)
    os.makedirs(out_dir, exist_ok=True)
    report = InferenceReport()
    try:
        if kind == 'video':
            infer_video(source, predictor, out_dir, save_prob, save_overlay,
                        progress, report=report)
        else:
            paths = list_images(source) if kind == 'folder' else [source]
            infer_images(paths, predictor, out_dir, save_prob, save_overlay,
                         progress, report=report)
    finally:
        record = dict(
            input=osp.abspath(source),
            kind=kind,
            backend=predictor.backend,
            precision=predictor.precision,
            input_size=list(predictor.spec.input_size),
            output_kind=predictor.spec.output_kind,
            **report.to_dict())
        with open(osp.join(out_dir, 'summary.json'), 'w') as f:
            json.dump(record, f, indent=2)
    return report
