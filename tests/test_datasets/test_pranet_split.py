"""The PraNet validation split: its rule, the committed list, the option."""
import os.path as osp
import random
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import ROOT
from mmengine.config import Config

from mmseg_kdas.datasets import PolypDataset
from mmseg_kdas.datasets.pranet_split import (CLINICDB,
                                              CLINICDB_SEQUENCE_STARTS, KVASIR,
                                              PRANET_TRAIN_FILE,
                                              PRANET_VAL_FILE,
                                              clinicdb_sequences,
                                              format_split_file,
                                              make_val_split, polyp_source,
                                              read_split_file, select_split,
                                              split_summary)

STARTS = (1, 11, 21, 31, 41)  # five sequences of ten frames


def toy_stems():
    """40 Kvasir-like names and frames 1-50 without every seventh one."""
    kvasir = [f'cju{i:03d}x' for i in range(40)]
    frames = [str(f) for f in range(1, 51) if f % 7]
    return kvasir + frames


def assert_whole_runs(val, train, starts):
    """Each held-out frame's sequence is held out with all its frames."""
    train_frames = [int(s) for s in train if polyp_source(s) == CLINICDB]
    sequences = clinicdb_sequences(train_frames, starts)
    val = set(val)
    for frames in sequences.values():
        held = [str(f) in val for f in frames]
        assert all(held) or not any(held), frames


def test_sources_by_stem():
    assert polyp_source('612') == polyp_source('1') == CLINICDB
    assert polyp_source('cju0qkwl35piu0993l0dewei2') == KVASIR
    assert polyp_source('ck2bxiswtxuw80838qkisqjwz') == KVASIR


def test_sequences_group_frames_by_start():
    groups = clinicdb_sequences([12, 1, 30, 10, 11, 21], (1, 11, 21))
    assert groups == {1: [1, 10], 11: [11, 12], 21: [21, 30]}
    with pytest.raises(ValueError, match='before the first'):
        clinicdb_sequences([3], (5, 9))
    with pytest.raises(ValueError, match='must increase'):
        clinicdb_sequences([3], (1, 9, 9))


def test_two_equal_sequences_half_held_out_gives_one_whole_sequence():
    stems = [str(f) for f in range(1, 21)]
    val = make_val_split(stems, fraction=0.5, starts=(1, 11))
    assert val in ([str(f) for f in range(1, 11)],
                   [str(f) for f in range(11, 21)])


def test_split_is_deterministic_and_order_free():
    stems = toy_stems()
    val = make_val_split(stems, starts=STARTS)
    shuffled = list(stems)
    random.Random(3).shuffle(shuffled)
    assert make_val_split(shuffled, starts=STARTS) == val
    assert make_val_split(stems, starts=STARTS) == val
    # another seed draws another split (at least one source differs)
    assert any(
        make_val_split(stems, seed=s, starts=STARTS) != val
        for s in range(1, 4))


def test_split_is_in_proportion_and_whole_runs():
    stems = toy_stems()
    val = make_val_split(stems, fraction=0.2, starts=STARTS)
    frames = [s for s in stems if polyp_source(s) == CLINICDB]
    val_frames = [s for s in val if polyp_source(s) == CLINICDB]
    assert sum(polyp_source(s) == KVASIR for s in val) == 8  # 20 % of 40
    # 43 frames in sequences of 8 or 9: the target round(0.2 * 43) = 9 is
    # met by one whole sequence, which leaves no second one closer
    assert len(frames) == 43 and len(val_frames) in (8, 9)
    assert_whole_runs(val, stems, STARTS)
    # a held-out sequence is a run of consecutive frame numbers
    numbers = sorted(int(s) for s in val_frames)
    present = sorted(int(s) for s in frames)
    run = present[present.index(numbers[0]):present.index(numbers[-1]) + 1]
    assert run == numbers
    assert numbers[0] in STARTS or numbers[0] - 1 in STARTS


def test_split_rejects_bad_input():
    with pytest.raises(ValueError, match='fraction'):
        make_val_split(toy_stems(), fraction=1.0)
    with pytest.raises(ValueError, match='repeated stems'):
        make_val_split(['1', '2', '1'])


def test_select_split_partitions_and_names_missing_images(tmp_path):
    split_file = tmp_path / 'val.txt'
    split_file.write_text('# a comment\n\n3\ncjuB\n')
    stems = ['1', '2', '3', 'cjuA', 'cjuB']
    val = select_split(stems, 'val', str(split_file))
    rest = select_split(stems, 'train-minus-val', str(split_file))
    assert val == ['3', 'cjuB'] and rest == ['1', '2', 'cjuA']
    assert select_split(stems, None, str(split_file)) == stems
    with pytest.raises(FileNotFoundError) as err:
        select_split(['1', '3'], 'val', str(split_file), where='imgs/')
    assert str(split_file) in str(err.value) and 'cjuB' in str(err.value)
    assert 'imgs/' in str(err.value)
    with pytest.raises(ValueError, match='split must be one of'):
        select_split(stems, 'test', str(split_file))
    split_file.write_text('3\n4\n3\n')
    with pytest.raises(ValueError, match=r"'3' is listed twice \(lines 1"):
        read_split_file(str(split_file))
    with pytest.raises(FileNotFoundError, match='nowhere.txt'):
        read_split_file(str(tmp_path / 'nowhere.txt'))


# The committed list (names only; no data needed)


def test_committed_train_list_is_the_pranet_training_set():
    train = read_split_file(PRANET_TRAIN_FILE)
    assert len(train) == len(set(train)) == 1450
    assert sum(polyp_source(s) == KVASIR for s in train) == 900
    frames = [int(s) for s in train if polyp_source(s) == CLINICDB]
    assert len(frames) == 550 and min(frames) >= 1 and max(frames) <= 612


def test_committed_val_list_is_the_split_of_the_train_list():
    train = read_split_file(PRANET_TRAIN_FILE)
    val = read_split_file(PRANET_VAL_FILE)
    assert val == make_val_split(train)  # regenerates to the line
    assert set(val) <= set(train)
    summary = split_summary(val, train)
    assert summary[KVASIR] == dict(val=90, total=900)
    assert (summary[CLINICDB]['val'], summary[CLINICDB]['total']) == (60,
                                                                      550)
    assert summary[CLINICDB]['runs'] == [(51, 67, 13), (200, 204, 5),
                                         (228, 252, 23), (343, 363, 19)]
    assert_whole_runs(val, train, CLINICDB_SEQUENCE_STARTS)
    # a held-out run never borders a training frame of its own sequence:
    # its neighbours in frame number are test frames or other sequences
    train_frames = {int(s) for s in set(train) - set(val) if s.isdigit()}
    for first, last, _ in summary[CLINICDB]['runs']:
        assert first in CLINICDB_SEQUENCE_STARTS or first - 1 not in \
            train_frames
        nxt = [s for s in CLINICDB_SEQUENCE_STARTS if s > last]
        assert not nxt or all(f not in train_frames
                              for f in range(last + 1, nxt[0]))
    text = open(PRANET_VAL_FILE).read()
    assert text == format_split_file(
        val, train, 'python tools/dataset_converters/make_val_split.py')


def test_generator_checks_and_writes(tmp_path):
    tool = osp.join(ROOT, 'tools', 'dataset_converters',
                    'make_val_split.py')
    run = [sys.executable, tool]
    ok = subprocess.run(run + ['--check'], cwd=ROOT, capture_output=True,
                        text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    out = tmp_path / 'val.txt'
    out.write_text('1\n')
    stale = subprocess.run(run + ['--check', '--out', str(out)], cwd=ROOT,
                           capture_output=True, text=True)
    assert stale.returncode == 1 and 'not the split' in stale.stdout
    wrote = subprocess.run(run + ['--out', str(out), '--seed', '1'],
                           cwd=ROOT, capture_output=True, text=True)
    assert wrote.returncode == 0, wrote.stderr
    train = read_split_file(PRANET_TRAIN_FILE)
    assert read_split_file(str(out)) == make_val_split(train, seed=1)
    assert '--seed 1' in out.read_text().splitlines()[1]


# The dataset option, on generated data


def _write_pairs(root, stems):
    for sub in ('images', 'masks'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for stem in stems:
        img = np.full((16, 16, 3), 90, np.uint8)
        mask = np.zeros((16, 16), np.uint8)
        mask[4:10, 4:10] = 255
        assert cv2.imwrite(str(root / 'images' / f'{stem}.jpg'), img)
        assert cv2.imwrite(str(root / 'masks' / f'{stem}.png'), mask)


def _stems(dataset):
    return [
        osp.splitext(osp.basename(dataset.get_data_info(i)['img_path']))[0]
        for i in range(len(dataset))
    ]


def test_dataset_split_option(tmp_path):
    stems = toy_stems()
    _write_pairs(tmp_path, stems)
    split_file = tmp_path / 'val.txt'
    val = make_val_split(stems, starts=STARTS)
    split_file.write_text(''.join(f'{s}\n' for s in val))

    def build(split, **kw):
        return PolypDataset(
            data_root=str(tmp_path),
            data_prefix=dict(img_path='images', seg_map_path='masks'),
            split=split,
            split_file=str(split_file),
            pipeline=[],
            **kw)

    held = _stems(build('val', test_set='PraNet-val'))
    rest = _stems(build('train-minus-val'))
    assert sorted(held) == sorted(val)
    assert not set(held) & set(rest)
    assert sorted(held + rest) == sorted(stems)
    assert build('val', test_set='PraNet-val').get_data_info(
        0)['test_set'] == 'PraNet-val'
    assert len(build(None)) == len(stems)

    split_file.write_text(split_file.read_text() + 'cjuGONE\n')
    with pytest.raises(FileNotFoundError) as err:
        build('train-minus-val')
    assert 'cjuGONE' in str(err.value) and str(split_file) in str(err.value)
    assert str(tmp_path / 'images') in str(err.value)
    with pytest.raises(ValueError, match="got 'train'"):
        build('train')


def test_base_dataset_config():
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', '_base_', 'datasets',
                 'pranet_polyp_val.py'))
    assert cfg.train_dataloader.dataset.split == 'train-minus-val'
    val = cfg.val_dataloader.dataset
    assert (val.split, val.test_set, val.test_mode) == ('val', 'PraNet-val',
                                                        True)
    assert val.data_prefix.img_path == 'TrainDataset/images'
    sets = [d.test_set for d in cfg.test_dataloader.dataset.datasets]
    assert sets == list(cfg.test_sets)
