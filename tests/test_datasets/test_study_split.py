"""Validation splits of any binary data root, source by source."""
import os.path as osp
import random

import cv2
import numpy as np
import pytest

from mmseg_kdas.datasets import PolypDataset
from mmseg_kdas.datasets.pranet_split import (make_grouped_val_split,
                                              read_split_file)
from mmseg_kdas.datasets.study_split import (make_study_val_split,
                                             write_study_val_split)

# 200 single images (source A) and 50 video frames (source B)
IMAGES = [f'img{i:03d}' for i in range(200)]
FRAMES_50 = [f'vid_{i:04d}' for i in range(1, 51)]
SOURCES = {'B': r'vid_(\d+)$', 'A': r'img'}
# ten runs of ten frames: 1-10, 20-29, 40-49, ..., 180-189
RUNS = [list(range(1, 11))] + [list(range(20 * k, 20 * k + 10))
                               for k in range(1, 10)]
VIDEO = [f'f{n}' for run in RUNS for n in run]
VIDEO_SOURCE = {'V': r'f(\d+)$'}


def held_runs(val, runs=RUNS, stem='f{}'):
    """The runs all in ``val``; fails if one is cut."""
    held = []
    for run in runs:
        inside = {stem.format(n) in val for n in run}
        assert len(inside) == 1, f'run {run[0]}-{run[-1]} is cut'
        if inside == {True}:
            held.append(run[0])
    return held


def test_deterministic_disjoint_subset_and_sorted():
    stems = IMAGES + FRAMES_50
    val = make_study_val_split(stems, 0.1, 3, SOURCES, ['B'])
    assert val == sorted(val) and len(set(val)) == len(val)
    assert set(val) < set(stems)
    train = [s for s in stems if s not in set(val)]
    assert set(train).isdisjoint(val) and len(train) + len(val) == 250
    assert make_study_val_split(stems, 0.1, 3, SOURCES, ['B']) == val
    for i in range(3):
        shuffled = random.Random(i).sample(stems, len(stems))
        assert make_study_val_split(shuffled, 0.1, 3, SOURCES, ['B']) == val


def test_every_source_keeps_its_share():
    stems = IMAGES + [f'cvc{i:02d}' for i in range(50)]
    sources = {'A': r'img\d+$', 'B': r'cvc'}
    val = make_study_val_split(stems, fraction=0.1, sources=sources)
    # by hand: round(0.1 * 200) = 20 of A, round(0.1 * 50) = 5 of B
    assert sum(s.startswith('img') for s in val) == 20
    assert sum(s.startswith('cvc') for s in val) == 5
    # 0.3: 60 and 15; without sources, 75 of all 250 in any mix
    val = make_study_val_split(stems, fraction=0.3, sources=sources)
    assert [sum(s.startswith(p) for s in val) for p in ('img', 'cvc')] == [
        60, 15
    ]
    assert len(make_study_val_split(stems, fraction=0.3)) == 75
    # a stem goes to the FIRST source that matches: 'img' before 'img0'
    val = make_study_val_split(
        stems, 0.1, sources={'first100': r'img0', 'all': r'img', 'B': 'cvc'})
    assert len(val) == 25 and sum(s.startswith('img0') for s in val) == 10


def test_no_sources_is_the_grouped_split_of_single_images():
    stems = [f'case{i:03d}' for i in range(60)]
    for seed in (0, 5):
        assert make_study_val_split(stems, 0.2, seed) == \
            make_grouped_val_split(stems, 0.2, seed)


def test_video_runs_are_taken_whole_closest_count():
    # 100 frames in runs of 10: 0.3 -> 30 = 3 runs, 0.34 -> 34 -> 30,
    # 0.36 -> 36 -> 40, 0.1 -> 1 run
    for fraction, runs in ((0.3, 3), (0.34, 3), (0.36, 4), (0.1, 1)):
        for seed in range(4):
            val = make_study_val_split(VIDEO, fraction, seed, VIDEO_SOURCE,
                                       ['V'])
            assert len(held_runs(val)) == runs and len(val) == 10 * runs
    # a video source next to single images: each at its share
    stems = VIDEO + IMAGES
    val = make_study_val_split(
        stems, 0.2, 1, {'V': r'f(\d+)$', 'A': 'img'}, videos=['V'])
    assert len(held_runs(val)) == 2
    assert sum(s.startswith('img') for s in val) == 40


def test_uneven_runs_walk_in_the_seeded_order():
    # runs of 12, 5, 3 and 20 frames: target round(0.25 * 40) = 10
    runs = [list(range(1, 13)), list(range(30, 35)), list(range(50, 53)),
            list(range(70, 90))]
    stems = [f'f{n}' for run in runs for n in run]
    counts = set()
    for seed in range(20):
        val = make_study_val_split(stems, 0.25, seed, VIDEO_SOURCE, ['V'])
        held = held_runs(val, runs)
        assert len(val) == sum(
            len(r) for r in runs if r[0] in held)
        counts.add(len(val))
    assert counts <= {8, 12, 15} and len(counts) > 1


def test_max_gap_joins_frames_a_step_apart():
    # ten runs of ten frames two apart: 0, 2, ..., 18, then 100, 102, ...
    runs = [[100 * k + 2 * i for i in range(10)] for k in range(10)]
    stems = [f'f{n:04d}' for run in runs for n in run]
    # max_gap=1: every frame is a run of its own: exactly 15 of 100
    val = make_study_val_split(stems, 0.15, 0, VIDEO_SOURCE, ['V'])
    assert len(val) == 15
    with pytest.raises(AssertionError, match='is cut'):
        held_runs(val, runs, 'f{:04d}')
    # max_gap=2: the ten runs again, held out whole (15 -> 10, not 20)
    for seed in range(3):
        val = make_study_val_split(stems, 0.15, seed, VIDEO_SOURCE, ['V'],
                                   max_gap=2)
        assert len(held_runs(val, runs, 'f{:04d}')) == 1 and len(val) == 10
    # max_gap=100 joins them all: one run, which would leave no training
    with pytest.raises(ValueError, match="'V' would keep no training"):
        make_study_val_split(stems, 0.6, 0, VIDEO_SOURCE, ['V'], max_gap=100)


def test_seeds_give_different_splits():
    stems = IMAGES + FRAMES_50
    splits = {
        tuple(make_study_val_split(stems, 0.1, seed, SOURCES))
        for seed in range(5)
    }
    assert len(splits) == 5
    videos = {
        tuple(make_study_val_split(VIDEO, 0.2, seed, VIDEO_SOURCE, ['V']))
        for seed in range(6)
    }
    assert len(videos) > 1


def test_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match=r"match no source.*odd1, odd2"):
        make_study_val_split(IMAGES + ['odd1', 'odd2'], sources={'A': 'img'})
    with pytest.raises(ValueError, match=r"'A'.*'img'"):  # names patterns
        make_study_val_split(IMAGES + ['odd'], sources={'A': 'img'})
    with pytest.raises(ValueError, match="source 'broken'.*regular"):
        make_study_val_split(IMAGES, sources={'A': 'img', 'broken': '(x'})
    with pytest.raises(ValueError, match="video source 'A'.*one group"):
        make_study_val_split(IMAGES, sources={'A': 'img'}, videos=['A'])
    with pytest.raises(ValueError, match="'B'.*'vid_x'.*not digits"):
        make_study_val_split(
            FRAMES_50 + ['vid_x'], sources={'B': r'vid_(\w+)'}, videos=['B'])
    with pytest.raises(ValueError, match=r"\['C'\] are not sources"):
        make_study_val_split(FRAMES_50, sources=SOURCES, videos=['C'])
    with pytest.raises(ValueError, match='not sources'):
        make_study_val_split(FRAMES_50, videos=['B'])
    with pytest.raises(ValueError, match="'vid_0001' and 'vid_1'.*number 1;"):
        make_study_val_split(
            FRAMES_50 + ['vid_1'], sources={'B': SOURCES['B']}, videos=['B'])
    with pytest.raises(ValueError, match=r"\['A'\] match no stem"):
        make_study_val_split(FRAMES_50, sources=SOURCES)
    with pytest.raises(ValueError, match='empty: too few images'):
        make_study_val_split(['a', 'b', 'c'], fraction=0.1)
    with pytest.raises(ValueError, match="'B' would keep no training"):
        make_study_val_split(IMAGES + ['vid_1'], 0.6, sources=SOURCES)
    with pytest.raises(ValueError, match='fraction'):
        make_study_val_split(IMAGES, fraction=1.0)
    with pytest.raises(ValueError, match='repeated'):
        make_study_val_split(IMAGES + IMAGES[:1])
    with pytest.raises(ValueError, match='max_gap'):
        make_study_val_split(IMAGES, max_gap=0)


def make_root(tmp_path, stems):
    """A tiny PraNet-layout root: a 6x8 image and mask of every stem."""
    img = np.full((6, 8, 3), 90, np.uint8)
    mask = np.zeros((6, 8), np.uint8)
    mask[2:4, 2:5] = 255
    for sub, array, ext in (('images', img, '.jpg'), ('masks', mask, '.png')):
        folder = tmp_path / 'TrainDataset' / sub
        folder.mkdir(parents=True)
        for stem in stems:
            assert cv2.imwrite(str(folder / (stem + ext)), array)
    return str(tmp_path)


def test_written_file_reads_back_and_the_dataset_splits(tmp_path):
    stems = [f'img{i:02d}' for i in range(30)] + [f'vid_{n:03d}' for n in (
        list(range(1, 9)) + list(range(20, 28)) + list(range(40, 44)))]
    root = make_root(tmp_path, stems)
    out = tmp_path / 'splits' / 'val.txt'
    out.parent.mkdir()
    sources = {'B': r'vid_(\d+)$', 'A': 'img'}
    val = write_study_val_split(root, str(out), 0.2, 7, sources, ['B'])
    assert val == make_study_val_split(stems, 0.2, 7, sources, ['B'])
    assert read_split_file(str(out)) == val
    # 6 of 30 images; 4 of 20 frames: the run 40-43 (4 is closest to 4)
    assert sum(s.startswith('img') for s in val) == 6
    assert [s for s in val if s.startswith('vid')] == [
        f'vid_{n:03d}' for n in range(40, 44)
    ]
    text = out.read_text()
    assert text.startswith(f'# Validation split of {root}')
    assert "fraction=0.2, seed=7, sources={'B': 'vid_(\\\\d+)$', 'A': " \
        "'img'}, videos=['B'], max_gap=1)" in text
    assert '# Held out per source: B: 4 of 20; A: 6 of 30\n' in text
    kwargs = dict(
        data_root=root,
        data_prefix=dict(
            img_path='TrainDataset/images', seg_map_path='TrainDataset/masks'),
        split_file=str(out),
        pipeline=[])
    seen = {}
    for split in ('val', 'train-minus-val'):
        dataset = PolypDataset(split=split, **kwargs)
        seen[split] = [
            osp.splitext(osp.basename(dataset.get_data_info(i)['img_path']))[0]
            for i in range(len(dataset))
        ]
    assert seen['val'] == val
    assert seen['train-minus-val'] == sorted(set(stems) - set(val))
    # written again: the same file
    assert write_study_val_split(root, str(out), 0.2, 7, sources,
                                 ['B']) == val
    assert out.read_text() == text


def test_write_refuses_a_root_without_training_images(tmp_path):
    with pytest.raises(FileNotFoundError, match='TrainDataset/images'):
        write_study_val_split(str(tmp_path), str(tmp_path / 'v.txt'))
    (tmp_path / 'TrainDataset' / 'images').mkdir(parents=True)
    with pytest.raises(ValueError, match='no image'):
        write_study_val_split(str(tmp_path), str(tmp_path / 'v.txt'))
    assert not (tmp_path / 'v.txt').exists()
