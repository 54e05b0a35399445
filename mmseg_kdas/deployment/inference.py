"""Segment images, folders of images and videos with a predictor.

The engine of ``tools/infer.py``. For every image or video frame it
writes, as soon as it is computed, the mask (PNG, 0 / 255 at the image's
own size; the label map for more than two classes) under ``masks/`` and
optionally the 8-bit probability map under ``probs/`` and an overlay under
``overlays/``. A video also gives ``<name>_overlay.mp4``: every frame with
its overlay and the running frames per second drawn on it.

Reading, the network, postprocessing and, for a video, the overlay video
run at once, each in its own thread
(:func:`~mmseg_kdas.deployment.stages.run_stages`).

An image that cannot be decoded, or a video frame that cannot, is named,
skipped and listed in the returned :class:`InferenceReport` (and in
``summary.json``, written even when the run stops early); what was written
before stays.
"""
import collections
import json
import os
import os.path as osp
import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import cv2
import numpy as np

from ..visualization.polyp_visualizer import _caption
from .backends import Predictor
from .pipeline import (draw_overlay, postprocess, preprocess,
                       probability_to_uint8, read_image)
from .spec import DeploySpec
from .stages import InferenceReport, Item, run_stages

__all__ = [
    'IMAGE_EXTENSIONS', 'VIDEO_EXTENSIONS', 'input_kind', 'list_images',
    'infer_images', 'infer_video', 'infer'
]

IMAGE_EXTENSIONS = ('.bmp', '.jpeg', '.jpg', '.png', '.tif', '.tiff',
                    '.webp')
VIDEO_EXTENSIONS = ('.avi', '.m4v', '.mkv', '.mov', '.mp4', '.mpeg', '.mpg',
                    '.webm', '.wmv')
#: Consecutive unreadable frames after which a video is taken as ended.
MAX_MISSED_FRAMES = 25


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

    def write(self, item: Item) -> Optional[np.ndarray]:
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


def _postprocess_and_write(writer: '_Writer',
                           spec: DeploySpec) -> Callable[[Item], None]:
    """The stage after the network: prob and mask at the image size, the
    image outputs written."""

    def run(item: Item) -> None:
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


def _image_items(paths: Sequence[str], spec: DeploySpec) -> Iterator[Item]:
    for path in paths:
        stem = osp.splitext(osp.basename(path))[0]
        try:
            image = read_image(path)
        except (ValueError, OSError, cv2.error) as err:
            # the report names the file already
            yield Item(stem, path, error=str(err).replace(f'{path}: ', ''))
            continue
        yield Item(stem, path, image, preprocess([image], spec))


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
        run_stages(
            _image_items(paths, predictor.spec), predictor,
            [('postprocess', _postprocess_and_write(writer, predictor.spec))],
            report, _progress(len(paths), progress))
    finally:
        report.seconds = time.perf_counter() - start
    return report


def _frame_items(capture, path: str, stem: str, spec: DeploySpec,
                 total: int, rate: Optional[float]) -> Iterator[Item]:
    """Frames of an open video, with the broken ones as failures.

    A frame's index comes from its time stamp when the frame rate is known
    (decoders may drop a broken frame without a failed read).
    """
    index, missed = 0, 0
    origin = None  # (index, time stamp in ms) of the first decoded frame

    def lost(i: int) -> Item:
        return Item(f'{stem}_{i:06d}', f'{path} frame {i}',
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
        yield Item(f'{stem}_{index:06d}', f'{path} frame {index}', frame,
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
    """Segment every frame of a video; with ``save_overlay``, also write an
    overlay video.

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
        save_overlay: Also write each frame's overlay as an image and the
            overlay video (with the running FPS drawn on every frame).
            Without it no frame is drawn or encoded: the masks alone, at
            the rate the network allows.
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
    if save_overlay:
        report.outputs.append(video_path)
    stamps: collections.deque = collections.deque(maxlen=fps_window)
    videos: List[cv2.VideoWriter] = []

    def encode(item: Item) -> None:
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
        stages = [('postprocess',
                   _postprocess_and_write(writer, predictor.spec))]
        if save_overlay:
            stages.append(('encode', encode))
        run_stages(
            _frame_items(capture, path, stem, predictor.spec, total, rate),
            predictor, stages, report, _progress(total, progress))
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
        save_overlay: Also write overlays (images; for a video also its
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
