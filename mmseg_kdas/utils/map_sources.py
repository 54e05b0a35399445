"""Where a distilled map comes from: sources and their parsing.

Shared by :class:`~mmseg_kdas.models.distillers.KDASDistiller` and the
teacher cache (:mod:`mmseg_kdas.teacher_cache`), which sits below the models.
"""
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Union

from torch import Tensor

__all__ = ['MapSource', 'Source', 'parse_source', 'parse_pairs', 'select_map']

# Where a distilled map comes from: an int is an index into the decode
# head's output (a tensor counts as a one-element list); a str names a module
# of the segmentor (``named_modules()``), optionally followed by ``:index``
# when that module returns a tuple or list, e.g. ``'backbone:3'``.
MapSource = Union[int, str]


class Source(NamedTuple):
    """A parsed :data:`MapSource`."""
    module: Optional[str]  # None: the decode head's output
    index: Optional[int]  # None: the module's whole (tensor) output

    def __str__(self) -> str:
        if self.module is None:
            return f'decode-head output {self.index}'
        if self.index is None:
            return f'module {self.module!r}'
        return f'module {self.module!r} output {self.index}'

    @property
    def key(self) -> str:
        """The source as a config writes it (``'head:0'`` for an index)."""
        if self.module is None:
            return f'head:{self.index}'
        if self.index is None:
            return self.module
        return f'{self.module}:{self.index}'


def parse_source(source: Any, role: str) -> Source:
    """Parse a :data:`MapSource`."""
    if isinstance(source, bool) or not isinstance(source, (int, str)):
        raise TypeError(f'{role} must be an int (decode-head output index) '
                        f'or a str (module name), got {source!r}')
    if isinstance(source, int):
        if source < 0:
            raise ValueError(f'{role} must be >= 0, got {source}')
        return Source(None, source)
    name, sep, index = source.partition(':')
    if not sep:
        return Source(name, None)
    if not index.isdigit():
        raise ValueError(f"{role} {source!r}: the part after ':' must be "
                         'an output index')
    return Source(name, int(index))


def parse_pairs(pairs: Sequence[dict], role: str,
                extra_keys: Sequence[str] = ()) -> List[dict]:
    """Parse ``[dict(student=..., teacher=...), ...]``."""
    parsed = []
    for i, pair in enumerate(pairs):
        where = f'{role}[{i}]'
        if not isinstance(pair, dict) or not {'student', 'teacher'} <= set(
                pair):
            raise ValueError(f'{where} must be a dict with keys student and '
                             f'teacher, got {pair!r}')
        unknown = set(pair) - {'student', 'teacher', *extra_keys}
        if unknown:
            raise ValueError(f'{where} has unknown keys {sorted(unknown)}')
        item = dict(pair)
        item['student'] = parse_source(pair['student'], f'{where}.student')
        item['teacher'] = parse_source(pair['teacher'], f'{where}.teacher')
        parsed.append(item)
    return parsed


def select_map(source: Source, head_out: Any, records: Dict[str, Any],
               role: str) -> Tensor:
    """Pick the map named by ``source``.

    Args:
        source: The parsed source.
        head_out: The decode head's output (a tensor or a list).
        records: Recorded module outputs, by module name.
        role: ``'student'`` or ``'teacher'``, for error messages.

    Returns:
        Tensor: The map.
    """
    if source.module is None:
        out = head_out
    elif source.module in records:
        out = records[source.module]
    else:
        raise RuntimeError(f'the {role} did not run {source} in its '
                           'forward pass')
    if isinstance(out, Tensor):
        if source.index not in (None, 0):
            raise IndexError(f'the {role} {source}: the output is one '
                             'tensor, use index 0')
        return out
    if isinstance(out, (list, tuple)):
        if source.index is None:
            raise TypeError(
                f'the {role} {source} returns a {type(out).__name__} of '
                f"{len(out)}; pick one with '{source.module}:<index>'")
        if source.index >= len(out):
            raise IndexError(f'the {role} {source}: the output has only '
                             f'{len(out)} items')
        out = out[source.index]
        if isinstance(out, Tensor):
            return out
    raise TypeError(f'the {role} {source} is a {type(out).__name__}, '
                    'not a tensor')
