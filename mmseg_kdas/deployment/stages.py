"""Run images or frames through the stages of inference, a thread each.

The engine of :mod:`~mmseg_kdas.deployment.inference`. The stages run at
once, each in its own thread, in order, so that everything around the
network overlaps with it: reading (decoding) and preprocessing; the
predictor (the calling thread); then the stages given, e.g. postprocessing
(the logits resized once to the image size, the mask) and writing the image
outputs; for a video, the overlay, its caption and the encoding of the
overlay video (OpenCV, NumPy, ONNX Runtime and OpenVINO release the GIL
while they work). The predictor's thread does nothing but run the
network, so the frame rate end to end is bounded by the network's latency
as long as the other stages, together, need less than the cores leave.
"""
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .backends import Predictor

__all__ = ['QUEUE_SIZE', 'InferenceReport', 'Item', 'run_stages']

#: Items waiting between two stages.
QUEUE_SIZE = 4


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
class Item:
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


def run_stages(items: Iterator[Item], predictor: Predictor,
               stages: Sequence[Tuple[str, Callable[[Item], None]]],
               report: InferenceReport, bar) -> None:
    """Read (a thread) -> infer (here) -> each of ``stages`` (a thread each).

    Items go through every stage in order; a failed item (``error`` set)
    skips the network and the stages and is counted at the end. An error
    in any stage stops the others and is raised here; what was written
    stays. Each stage's working time goes to ``report``.

    Args:
        items: The images or frames, read and preprocessed (``batch``) as
            the iterator is advanced, in a thread of their own.
        predictor: The network; its first output becomes ``output``.
        stages: ``(name, function)`` of each stage after the network, in
            order; a function works on an item in place.
        report: Counts the written items and the failures, and the time
            of each stage.
        bar: A progress bar (``update()`` per item), or None.
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
