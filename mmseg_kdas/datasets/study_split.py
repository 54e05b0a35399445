"""Validation splits for the KD study, of any binary data root.

A data root in the PraNet layout (``TrainDataset/images``,
``TrainDataset/masks``) may mix sources: single images of different
examinations (Kvasir-SEG) and frames cut from videos (CVC-ClinicDB), whose
neighbours are near-duplicates. :func:`make_study_val_split` holds out
``round(fraction * n)`` images of every source, so that each keeps its
share:

- ``sources`` name the source of a stem: ``{name: regex}``, in order; a
  stem belongs to the first source whose regex matches at its start;
- of a source listed in ``videos``, the regex's one group captures the
  frame number; frames are grouped into runs of consecutive numbers (a new
  run where the next number is more than ``max_gap`` above the previous)
  and runs are held out whole, walked in a seeded hashed order, each taken
  when it brings the count closer to the target (as
  :func:`~.pranet_split.make_val_split` does with CVC-ClinicDB);
- of any other source, the first ``round(fraction * n)`` images in a
  seeded hashed order of ``'<source>:<stem>'``.

The result depends on the set of stems and the arguments only.
:func:`write_study_val_split` writes it for a data root, in the format
``PolypDataset(split='val' | 'train-minus-val', split_file=...)`` reads.
"""
import os.path as osp
import re
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

from mmseg_kdas.utils.atomic import atomic_write_text
from .polyp import index_by_stem
from .pranet_split import (PRANET_VAL_FILE, _checked_stems, _rank,
                           _take_whole_groups, format_grouped_split_file)

__all__ = ['make_study_val_split', 'write_study_val_split']

#: The one source of ``sources=None``.
ALL = 'all'


def _compiled(sources: Optional[Mapping[str, str]]) -> Dict[str, re.Pattern]:
    """``{source: compiled regex}`` (``{ALL: None}`` for no sources)."""
    if sources is None:
        return {ALL: None}
    sources = dict(sources)
    if not sources:
        raise ValueError('sources is empty: give {name: regex} or None')
    compiled = {}
    for name, regex in sources.items():
        try:
            compiled[name] = re.compile(regex)
        except (re.error, TypeError) as e:
            raise ValueError(f'source {name!r}: bad regular expression '
                             f'{regex!r}: {e}') from e
    return compiled


def _by_source(stems: Sequence[str],
               patterns: Dict[str, re.Pattern]) -> Dict[str, List[str]]:
    """``{source: its stems, sorted}``; every stem to its first match."""
    members: Dict[str, List[str]] = {name: [] for name in patterns}
    unmatched = []
    for stem in sorted(stems):
        name = next((n for n, p in patterns.items()
                     if p is None or p.match(stem)), None)
        if name is None:
            unmatched.append(stem)
        else:
            members[name].append(stem)
    if unmatched:
        listed = ', '.join(f'{n!r}: {p.pattern!r}'
                           for n, p in patterns.items())
        raise ValueError(
            f'{len(unmatched)} stem(s) match no source ({listed}): '
            f'{", ".join(unmatched[:10])}'
            f'{" ..." if len(unmatched) > 10 else ""}')
    empty = [name for name, found in members.items() if not found]
    if empty:
        raise ValueError(f'source(s) {empty} match no stem (an earlier '
                         'source may take them all): every source must '
                         'keep at least one training image')
    return members


def _frame_runs(name: str, pattern: re.Pattern, stems: List[str],
                max_gap: int) -> Dict[int, List[str]]:
    """``{first frame: stems of the run}`` of a video source."""
    if pattern is None or pattern.groups != 1:
        raise ValueError(
            f'video source {name!r}: its regular expression must have '
            'exactly one group, capturing the frame number, e.g. '
            r"r'frame_(\d+)$'")
    frames: Dict[int, str] = {}
    for stem in stems:
        text = pattern.match(stem).group(1)
        if text is None or not re.fullmatch(r'[0-9]+', text):
            raise ValueError(f'video source {name!r}: stem {stem!r} gives '
                             f'frame number {text!r}, not digits')
        if int(text) in frames:
            raise ValueError(
                f'video source {name!r}: stems {frames[int(text)]!r} and '
                f'{stem!r} have one frame number {int(text)}; give each '
                'video a source of its own')
        frames[int(text)] = stem
    runs: Dict[int, List[str]] = {}
    first = previous = None
    for frame in sorted(frames):
        if previous is None or frame - previous > max_gap:
            first = frame
        runs.setdefault(first, []).append(frames[frame])
        previous = frame
    return runs


def _split_by_source(stems: Iterable[str], fraction: float, seed: int,
                     sources: Optional[Mapping[str, str]],
                     videos: Iterable[str],
                     max_gap: int) -> Dict[str, tuple]:
    """``{source: (validation stems, all its stems)}``."""
    stems = _checked_stems(stems, fraction)
    if isinstance(max_gap, bool) or not isinstance(max_gap, int) \
            or max_gap < 1:
        raise ValueError(f'max_gap must be an integer >= 1, got {max_gap!r}')
    videos = [videos] if isinstance(videos, str) else list(videos)
    patterns = _compiled(sources)
    unknown = [v for v in videos if v not in patterns or sources is None]
    if unknown:
        raise ValueError(f'videos {unknown} are not sources (sources: '
                         f'{list(sources or {})})')
    for name in videos:  # the group, checked before any stem is matched
        _frame_runs(name, patterns[name], [], max_gap)
    split = {}
    for name, members in _by_source(stems, patterns).items():
        target = round(fraction * len(members))
        if name in videos:
            runs = _frame_runs(name, patterns[name], members, max_gap)
            val = _take_whole_groups(
                runs, target, lambda first: _rank(seed, f'{name}:run{first}'))
        else:
            key = (lambda s: _rank(seed, s)) if sources is None else (
                lambda s: _rank(seed, f'{name}:{s}'))
            val = sorted(members, key=key)[:target]
        if len(val) >= len(members):
            raise ValueError(
                f'source {name!r} would keep no training image ({len(val)} '
                f'of {len(members)} held out): lower fraction={fraction}'
                f'{" or max_gap" if name in videos else ""}')
        split[name] = (sorted(val), members)
    if not any(val for val, _ in split.values()):
        raise ValueError(
            f'the validation split is empty: too few images '
            f'({len(stems)}) for fraction={fraction} (round(fraction * n) '
            'is 0 for every source, or their runs are too long)')
    return split


def make_study_val_split(stems: Iterable[str],
                         fraction: float = 0.1,
                         seed: int = 0,
                         sources: Optional[Mapping[str, str]] = None,
                         videos: Iterable[str] = (),
                         max_gap: int = 1) -> List[str]:
    """Choose the validation stems of a training set, source by source.

    Args:
        stems: The training stems (any order).
        fraction: Share of every source to hold out, in (0, 1).
        seed: Seed of the hashed orders.
        sources: ``{name: regex}`` in order (matched with ``re.match``; a
            stem goes to the first match), or None: one source.
        videos: Names of the sources of video frames; their regex has one
            group capturing the frame number (digits).
        max_gap: Frames at most this far apart are in one run.

    Returns:
        list[str]: The validation stems, sorted. They depend on the set of
        ``stems`` and the arguments, not on the order of ``stems``.

    Raises:
        ValueError: ``fraction`` not in (0, 1), a repeated stem, a bad
            regex, a stem matching no source, a source matching no stem, a
            video source without one group or with a non-digit or repeated
            frame number, a video that is not a source, a source keeping
            no training image, or an empty split (the message names it).
    """
    split = _split_by_source(stems, fraction, seed, sources, videos,
                             max_gap)
    return sorted(s for val, _ in split.values() for s in val)


def write_study_val_split(data_root: str,
                          out_file: str,
                          fraction: float = 0.1,
                          seed: int = 0,
                          sources: Optional[Mapping[str, str]] = None,
                          videos: Iterable[str] = (),
                          max_gap: int = 1) -> List[str]:
    """Write the validation split of ``data_root/TrainDataset/images``.

    The file (written atomically) is the one ``read_split_file`` and
    ``PolypDataset(split='val' | 'train-minus-val', split_file=out_file)``
    read: ``#`` header lines (how it was made, the count per source), then
    one validation stem a line.

    Args:
        data_root: A data root in the PraNet layout.
        out_file: The split file to write (not the packaged PraNet one).
        fraction, seed, sources, videos, max_gap: As
            :func:`make_study_val_split`.

    Returns:
        list[str]: The validation stems, sorted, as written.

    Raises:
        FileNotFoundError: No ``TrainDataset/images`` folder in
            ``data_root``.
        ValueError: As :func:`make_study_val_split`; no image in the folder;
            ``out_file`` is the packaged split; or a stem the file format
            cannot hold (leading ``#`` or surrounding spaces).
    """
    img_dir = osp.join(data_root, 'TrainDataset', 'images')
    if not osp.isdir(img_dir):
        raise FileNotFoundError(f'no TrainDataset/images folder: {img_dir}')
    if osp.abspath(out_file) == osp.abspath(PRANET_VAL_FILE):
        raise ValueError(f'will not overwrite the packaged PraNet split '
                         f'{PRANET_VAL_FILE}; choose another out_file')
    stems = sorted(index_by_stem(img_dir))
    if not stems:
        raise ValueError(f'no image in {img_dir}')
    videos = [videos] if isinstance(videos, str) else list(videos)
    split = _split_by_source(stems, fraction, seed, sources, videos,
                             max_gap)
    val = sorted(s for v, _ in split.values() for s in v)
    bad = [s for s in val if s.startswith('#') or s != s.strip()]
    if bad:
        raise ValueError(f'stem(s) a split file cannot hold (a leading # or '
                         f'spaces): {bad[:10]}; rename the images')
    how = (f'write_study_val_split(fraction={fraction}, seed={seed}, '
           f'sources={dict(sources) if sources is not None else None}, '
           f'videos={videos}, max_gap={max_gap})')
    counts = '; '.join(f'{name}: {len(v)} of {len(members)}'
                       for name, (v, members) in split.items())
    text = format_grouped_split_file(val, stems, img_dir, how)
    lines = text.splitlines(keepends=True)
    n_header = next(i for i, line in enumerate(lines)
                    if not line.startswith('#'))
    lines.insert(n_header, f'# Held out per source: {counts}\n')
    atomic_write_text(out_file, ''.join(lines))
    return val
