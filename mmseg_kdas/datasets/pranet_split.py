"""Validation splits: of the PraNet training set, and of any image folder.

The PraNet protocol trains on 1,450 images (900 Kvasir-SEG, 550
CVC-ClinicDB) and has no validation split; anything tuned on it is tuned on
the test sets. :func:`make_val_split` holds out about a tenth of each source:

- Kvasir-SEG images (stems such as ``cju0qkwl35piu0993l0dewei2``) are
  single images of different examinations: the held-out ones are the first
  ``round(fraction * n)`` in an order given by a SHA-1 hash of the seed and
  the stem (independent of the order of the listing and of the other
  images);
- CVC-ClinicDB frames (stems ``1`` ... ``612``) are cut from 29 colonoscopy
  video sequences, and neighbouring frame numbers are near-duplicates: a
  held-out frame with its neighbour in training would measure memory, not
  generalisation. Frames are therefore held out by whole sequences
  (:data:`CLINICDB_SEQUENCE_STARTS`, runs of consecutive frame numbers),
  walked in a hashed order, each taken when it brings the count closer to
  ``round(fraction * n)``.

The committed split, ``splits/pranet_val.txt`` next to this file
(:data:`PRANET_VAL_FILE`), is ``make_val_split`` of the 1,450 stems of
``splits/pranet_train.txt`` (:data:`PRANET_TRAIN_FILE`; names only, no
data), written by ``tools/dataset_converters/make_val_split.py``.
``PolypDataset(split='train-minus-val' | 'val')`` reads it.

For a data set of your own, :func:`make_grouped_val_split` holds out
whole groups of images (a patient, a video: the first group of a regular
expression matched against the stem), or single images without one
(``make_val_split.py --images``; ``docs/en/own_data.md``).
"""
import bisect
import hashlib
import os.path as osp
import re
from collections import Counter
from typing import (Any, Callable, Dict, Iterable, List, Optional, Sequence,
                    Tuple)

__all__ = [
    'CLINICDB_SEQUENCE_STARTS', 'KVASIR', 'CLINICDB', 'SPLITS',
    'PRANET_VAL_FILE', 'PRANET_TRAIN_FILE', 'polyp_source',
    'clinicdb_sequences', 'make_val_split', 'make_grouped_val_split',
    'format_grouped_split_file', 'read_split_file',
    'format_split_file', 'select_split', 'split_summary'
]

KVASIR = 'Kvasir-SEG'
CLINICDB = 'CVC-ClinicDB'
#: Values of ``PolypDataset(split=...)``.
SPLITS = ('train-minus-val', 'val')

_HERE = osp.join(osp.dirname(osp.abspath(__file__)), 'splits')
#: The committed validation list (one stem per line, ``#`` comments).
PRANET_VAL_FILE = osp.join(_HERE, 'pranet_val.txt')
#: The 1,450 stems of the PraNet ``TrainDataset`` the split was made from.
PRANET_TRAIN_FILE = osp.join(_HERE, 'pranet_train.txt')

#: First frame number of each of the 29 CVC-ClinicDB video sequences
#: (frames 1 ... 612). Found where the mean absolute difference of 32x24
#: thumbnails of consecutive frames jumps (to 2-4 times its median of 13
#: grey levels) and checked by eye on contact sheets of all frames: every
#: boundary is a change of scene (another polyp, colon segment or light).
#: A sequence may hold two nearby views of one examination (104-126: two
#: camera positions at one polyp; 152-177: the polyp, then an instrument);
#: they stay together, which can only make the held-out runs larger.
CLINICDB_SEQUENCE_STARTS = (1, 26, 51, 68, 79, 104, 127, 152, 178, 200, 206,
                            228, 253, 278, 298, 318, 343, 364, 384, 409, 429,
                            448, 467, 479, 504, 529, 547, 572, 592)


def polyp_source(stem: str) -> str:
    """The source data set of a PraNet training image, from its stem.

    Args:
        stem: A file name without its suffix.

    Returns:
        str: :data:`CLINICDB` for a frame number (``'1'`` ... ``'612'``),
        :data:`KVASIR` otherwise.
    """
    return CLINICDB if stem.isdigit() else KVASIR


def clinicdb_sequences(
    frames: Iterable[int],
    starts: Sequence[int] = CLINICDB_SEQUENCE_STARTS
) -> Dict[int, List[int]]:
    """Group frame numbers by the video sequence they belong to.

    Args:
        frames: Frame numbers (any order, no repeats).
        starts: The first frame of every sequence, increasing; a sequence
            runs to the frame before the next start.

    Returns:
        dict: ``{start: sorted frames of that sequence}`` for the sequences
        that have a frame.

    Raises:
        ValueError: If ``starts`` is not increasing, or a frame lies before
            the first start.
    """
    starts = list(starts)
    if not starts or any(b <= a for a, b in zip(starts, starts[1:])):
        raise ValueError(f'sequence starts must increase, got {starts}')
    groups: Dict[int, List[int]] = {}
    for frame in sorted(frames):
        i = bisect.bisect_right(starts, frame) - 1
        if i < 0:
            raise ValueError(f'frame {frame} lies before the first sequence '
                             f'start {starts[0]}')
        groups.setdefault(starts[i], []).append(frame)
    return groups


def _rank(seed: int, name: str) -> str:
    """A seeded order that depends on nothing but ``seed`` and ``name``."""
    return hashlib.sha1(f'{seed}:{name}'.encode()).hexdigest()


def _sort_key(stem: str) -> Tuple[int, int, str]:
    """Kvasir-SEG stems by name, then CVC-ClinicDB frames by number."""
    if polyp_source(stem) == CLINICDB:
        return (1, int(stem), stem)
    return (0, 0, stem)


def _checked_stems(stems: Iterable[str], fraction: float) -> List[str]:
    """``stems`` as a list, after checking ``fraction`` and repeats."""
    if not 0 < fraction < 1:
        raise ValueError(f'fraction must be in (0, 1), got {fraction}')
    stems = list(stems)
    repeated = sorted(s for s, n in Counter(stems).items() if n > 1)
    if repeated:
        raise ValueError(f'repeated stems: {repeated[:10]}')
    return stems


def _take_whole_groups(groups: Dict[Any, List], target: int,
                       rank: Callable[[Any], str]) -> List:
    """Members of whole groups, walked in the order of ``rank``, each group
    taken when it brings the count closer to ``target``."""
    taken: List = []
    for key in sorted(groups, key=rank):
        size = len(groups[key])
        if abs(len(taken) + size - target) < abs(len(taken) - target):
            taken += groups[key]
    return taken


def make_val_split(
    stems: Iterable[str],
    fraction: float = 0.1,
    seed: int = 0,
    starts: Sequence[int] = CLINICDB_SEQUENCE_STARTS
) -> List[str]:
    """Choose the validation stems of a PraNet training set.

    Args:
        stems: The training stems (Kvasir-SEG names and CVC-ClinicDB frame
            numbers, mixed, any order).
        fraction: Share of each source to hold out, in (0, 1).
        seed: Seed of the hashed orders.
        starts: First frame of every CVC-ClinicDB sequence.

    Returns:
        list[str]: The validation stems, Kvasir-SEG names sorted, then
        CVC-ClinicDB frames by number. The result depends on the set of
        ``stems`` only, not on their order.

    Raises:
        ValueError: If ``fraction`` is not in (0, 1) or a stem repeats.
    """
    stems = _checked_stems(stems, fraction)
    kvasir = [s for s in stems if polyp_source(s) == KVASIR]
    frames = [int(s) for s in stems if polyp_source(s) == CLINICDB]

    kvasir_target = round(fraction * len(kvasir))
    val = sorted(kvasir, key=lambda s: _rank(seed, s))[:kvasir_target]

    sequences = clinicdb_sequences(frames, starts)
    val += [
        str(f) for f in _take_whole_groups(
            sequences, round(fraction * len(frames)),
            lambda start: _rank(seed, f'seq{start}'))
    ]
    return sorted(val, key=_sort_key)


def make_grouped_val_split(stems: Iterable[str],
                           fraction: float = 0.1,
                           seed: int = 0,
                           group_by: Optional[str] = None) -> List[str]:
    """Choose the validation stems of any training set, by whole groups.

    Images of one patient or one video are near-duplicates of each other:
    one of them in training and another in validation measures memory, not
    generalisation. ``group_by`` names the group of a stem: the first
    group of the regular expression, matched at the start of the stem
    (``r'(.+)_\\d+$'`` groups ``p07_0001`` ... by ``p07``). Groups are walked
    in an order hashed from the seed and the group, each taken when it
    brings the count closer to ``round(fraction * n)``, as
    :func:`make_val_split` does with CVC-ClinicDB's videos. Without
    ``group_by`` every image is its own group.

    Args:
        stems: The training stems (any order).
        fraction: Share of the images to hold out, in (0, 1).
        seed: Seed of the hashed order.
        group_by: Regular expression with one group, or None.

    Returns:
        list[str]: The validation stems, sorted. The result depends on the
        set of ``stems`` only, not on their order.

    Raises:
        ValueError: ``fraction`` is not in (0, 1), a stem repeats, the
            expression has no group, or a stem does not match it (the
            message names the stems).
    """
    stems = sorted(_checked_stems(stems, fraction))
    groups: Dict[str, List[str]] = {}
    if group_by is None:
        groups = {s: [s] for s in stems}
    else:
        pattern = re.compile(group_by)
        if pattern.groups < 1:
            raise ValueError(f'--group-by {group_by!r} has no group: put '
                             'the part naming the group in parentheses')
        unmatched = []
        for stem in stems:
            match = pattern.match(stem)
            if match is None or match.group(1) is None:
                unmatched.append(stem)
            else:
                groups.setdefault(match.group(1), []).append(stem)
        if unmatched:
            raise ValueError(
                f'{len(unmatched)} stem(s) do not match {group_by!r}: '
                f'{", ".join(unmatched[:10])}')
    return sorted(
        _take_whole_groups(groups, round(fraction * len(stems)),
                           lambda key: _rank(seed, key)))


def format_grouped_split_file(val: Sequence[str], train: Sequence[str],
                              where: str, command: str) -> str:
    """The text of a :func:`make_grouped_val_split` file.

    Args:
        val: The validation stems, in order.
        train: All training stems the split was made from.
        where: The image folder they came from.
        command: The command that wrote the file (for the header).

    Returns:
        str: The file's text: a commented header, then one stem a line.
    """
    header = [
        f'Validation split of {where} ({len(set(train))} images): '
        f'{len(val)} stems ({len(val) / max(len(set(train)), 1):.1%}), '
        'one per line.', f'Written by: {command}',
        'Train on the rest: PolypDataset(split="train-minus-val", '
        'split_file=<this file>).'
    ]
    return ''.join(f'# {line}\n' for line in header) + ''.join(
        f'{stem}\n' for stem in val)


def read_split_file(path: str) -> List[str]:
    """The stems of a split file: one per line; blank and ``#`` lines skip.

    Args:
        path: The file.

    Returns:
        list[str]: The stems in file order.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If a stem repeats (the message names the file, the stem
            and its lines).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'split file not found: {path}')
    stems: List[str] = []
    lines: Dict[str, int] = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            stem = line.strip()
            if not stem or stem.startswith('#'):
                continue
            if stem in lines:
                raise ValueError(f'{path}: {stem!r} is listed twice (lines '
                                 f'{lines[stem]} and {number})')
            lines[stem] = number
            stems.append(stem)
    return stems


def split_summary(
    val: Iterable[str],
    train: Iterable[str],
    starts: Sequence[int] = CLINICDB_SEQUENCE_STARTS
) -> Dict[str, dict]:
    """Counts per source and the held-out CVC-ClinicDB runs.

    Args:
        val: The validation stems.
        train: All training stems (``val`` included).
        starts: First frame of every CVC-ClinicDB sequence.

    Returns:
        dict: ``{source: dict(val=n, total=n)}`` and, for CVC-ClinicDB,
        ``runs``: ``[(first frame, last frame, frames held out)]`` of the
        held-out sequences.
    """
    val, train = set(val), set(train)
    summary: Dict[str, dict] = {}
    for source in (KVASIR, CLINICDB):
        summary[source] = dict(
            val=sum(polyp_source(s) == source for s in val),
            total=sum(polyp_source(s) == source for s in train))
    groups = clinicdb_sequences(
        [int(s) for s in val if polyp_source(s) == CLINICDB], starts)
    summary[CLINICDB]['runs'] = [(g[0], g[-1], len(g))
                                 for _, g in sorted(groups.items())]
    return summary


def format_split_file(val: Sequence[str], train: Sequence[str],
                      command: str) -> str:
    """The text of a split file: a commented header, then one stem a line.

    Args:
        val: The validation stems, in order.
        train: All training stems the split was made from.
        command: The command that wrote the file (for the header).

    Returns:
        str: The file's text.
    """
    summary = split_summary(val, train)
    header = [
        'Validation split of the PraNet training set (TrainDataset, '
        f'{len(set(train))} images): {len(val)} stems, one per line.',
        f'Written by: {command}',
        'Train on the rest: PolypDataset(split="train-minus-val").'
    ]
    for source in (KVASIR, CLINICDB):
        s = summary[source]
        header.append(f'{source}: {s["val"]} of {s["total"]} '
                      f'({s["val"] / max(s["total"], 1):.1%})')
    runs = ', '.join(f'{a}-{b} ({n})'
                     for a, b, n in summary[CLINICDB]['runs'])
    header.append(f'{CLINICDB} sequences held out whole (frames, count): '
                  f'{runs}')
    return ''.join(f'# {line}\n' for line in header) + ''.join(
        f'{stem}\n' for stem in val)


def select_split(stems: Sequence[str],
                 split: Optional[str],
                 split_file: str = PRANET_VAL_FILE,
                 where: str = 'the data set') -> List[str]:
    """The stems of ``stems`` that a split keeps.

    Args:
        stems: The stems of a data set's images.
        split: ``'val'`` (the listed stems), ``'train-minus-val'`` (the
            others) or None (all of ``stems``).
        split_file: The validation list (:func:`read_split_file`).
        where: What ``stems`` are, for messages (e.g. the image folder).

    Returns:
        list[str]: The kept stems, in the order of ``stems``.

    Raises:
        ValueError: If ``split`` is not one of :data:`SPLITS` or None.
        FileNotFoundError: If the file is missing, or a listed stem is not
            among ``stems`` (the message names the file and the stems): the
            list was made for another data set.
    """
    if split is None:
        return list(stems)
    if split not in SPLITS:
        raise ValueError(f'split must be one of {SPLITS} or None, got '
                         f'{split!r}')
    listed = read_split_file(split_file)
    present = set(stems)
    missing = [s for s in listed if s not in present]
    if missing:
        more = f' and {len(missing) - 10} more' if len(missing) > 10 else ''
        raise FileNotFoundError(
            f'{len(missing)} image(s) listed in {split_file} are not in '
            f'{where}: {", ".join(missing[:10])}{more}; the split was made '
            'for another data set')
    listed_set = set(listed)
    if split == 'val':
        return [s for s in stems if s in listed_set]
    return [s for s in stems if s not in listed_set]
