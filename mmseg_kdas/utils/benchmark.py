"""Timing and memory measurement shared by the benchmark tools."""
import ctypes
import os
import statistics
import threading
import time
from typing import Callable, Dict, List, Sequence

import numpy as np
import torch

_PAGE = os.sysconf('SC_PAGE_SIZE')


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object],
              device: torch.device,
              warmup: int = 2,
              repeats: int = 5) -> Dict[str, float]:
    """Median wall time of ``fn`` after ``warmup`` untimed calls.

    Args:
        fn: The work to time; called ``warmup + repeats`` times.
        device: Synchronised before and after each timed call.
        warmup: Untimed calls first (allocator, kernels, caches).
        repeats: Timed calls.

    Returns:
        dict with ``median``, ``min`` and ``max`` seconds of the timed calls.
    """
    if repeats < 1:
        raise ValueError(f'repeats must be >= 1, got {repeats}')
    for _ in range(warmup):
        fn()
    times: List[float] = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return dict(
        median=statistics.median(times), min=min(times), max=max(times))


def time_interleaved(fns: Dict[str, Callable[[], object]],
                     device: torch.device,
                     warmup: int = 2,
                     repeats: int = 5) -> Dict[str, Dict[str, float]]:
    """:func:`time_call` of several functions, in interleaved rounds.

    Each round calls every function once (the order rotating from round to
    round), so that a drift of the machine's speed (frequency, a neighbour)
    reaches them all alike and their ratios stay fair.

    Args:
        fns: ``{name: work}``.
        device: Synchronised before and after each timed call.
        warmup: Untimed rounds first.
        repeats: Timed rounds.

    Returns:
        ``{name: dict(median=..., min=..., max=...)}`` in seconds.
    """
    if repeats < 1:
        raise ValueError(f'repeats must be >= 1, got {repeats}')
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            synchronize(device)
            start = time.perf_counter()
            fns[name]()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {
        name: dict(
            median=statistics.median(t), min=min(t), max=max(t))
        for name, t in times.items()
    }


def time_image_batches(fn: Callable[[np.ndarray], object],
                       size: int,
                       batch_sizes: Sequence[int],
                       warmup: int = 2,
                       repeats: int = 5) -> Dict[int, float]:
    """Median seconds of ``fn`` per batch size, on the CPU.

    Args:
        fn: Work on an ``N x size x size x 3`` uint8 batch of random
            images (the same seed for every batch size).
        size: Side of the images.
        batch_sizes: The ``N`` to time.
        warmup: Untimed calls first, per batch size.
        repeats: Timed calls, per batch size.

    Returns:
        ``{batch size: median seconds}`` (see :func:`time_call`).
    """
    times = {}
    for bs in batch_sizes:
        batch = np.random.default_rng(0).integers(
            0, 256, (bs, size, size, 3), dtype=np.uint8)
        times[bs] = time_call(lambda: fn(batch), torch.device('cpu'),
                              warmup, repeats)['median']
    return times


def _rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * _PAGE


def _release_free_memory() -> None:
    """Hand memory freed by earlier work back to the OS (glibc), so that the
    resident set measures what the next block needs, not what an earlier
    one left in the allocator's free lists."""
    import gc
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: measure as it is
        pass


class PeakMemory:
    """Peak memory of a block, above what was in use when it began.

    On CUDA it reads the caching allocator's peak; on the CPU it samples the
    process's resident set every millisecond from a thread (Linux
    ``/proc/self/statm``), after handing freed memory back to the OS, which
    catches the peak of any block lasting more than a few milliseconds.

    Example:
        >>> with PeakMemory(torch.device('cpu')) as mem:
        ...     x = torch.ones(1 << 20)
        >>> mem.peak_bytes > 0
        True
    """

    def __init__(self, device: torch.device, interval: float = 1e-3):
        self.device = device
        self.interval = interval
        self.peak_bytes = 0

    def __enter__(self) -> 'PeakMemory':
        if self.device.type == 'cuda':
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            _release_free_memory()
            self._base = _rss_bytes()
            self._max = self._base
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._max = max(self._max, _rss_bytes())
            self._stop.wait(self.interval)

    def __exit__(self, *exc) -> None:
        if self.device.type == 'cuda':
            synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._max, _rss_bytes())
        self.peak_bytes = max(0, peak - self._base)


def build_deployed_model(config: str) -> torch.nn.Module:
    """The model a config deploys, in eval mode: a distiller's student.

    The teacher checkpoint is not loaded (weights do not change sizes or
    speed), so benchmarks run without the teacher file.

    Args:
        config: Path of a model or KDAS config.

    Returns:
        The segmentor, randomly initialised.
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    if not os.path.isfile(config):
        raise FileNotFoundError(f'config file not found: {config}')
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model_cfg = cfg.model.copy()
    model_cfg.pop('teacher_ckpt', None)
    model = MODELS.build(model_cfg)
    return getattr(model, 'student', model).eval()


def count_flops(model: torch.nn.Module, size: int) -> int:
    """FLOPs of one ``size`` x ``size`` image in tensor mode.

    Counted by mmengine's ``FlopAnalyzer`` (fvcore's rules: one fused
    multiply-add is one FLOP).
    """
    from mmengine.analysis import FlopAnalyzer
    inputs = torch.zeros(1, 3, size, size)
    analyzer = FlopAnalyzer(model, (inputs, ))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    with torch.no_grad():
        return int(analyzer.total())


def markdown_table(header: List[str], rows: List[List[str]]) -> str:
    """Rows as a GitHub markdown table."""
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '|'.join('---' for _ in header) + '|']
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)
