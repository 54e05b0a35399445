"""A validation split of your own data (make_val_split.py --images)."""
import os
import random

import pytest
from conftest import load_tool

from mmseg_kdas.datasets.pranet_split import (PRANET_VAL_FILE,
                                              make_grouped_val_split,
                                              read_split_file)

tool = load_tool('tools/dataset_converters/make_val_split.py')
# 12 patients with 5 images each
STEMS = [f'p{p:02d}_{i:04d}' for p in range(12) for i in range(5)]


def test_single_images_in_proportion_and_order_free():
    stems = [f'case{i:03d}' for i in range(50)]
    val = make_grouped_val_split(stems, fraction=0.1)
    assert len(val) == 5 and val == sorted(val) and set(val) <= set(stems)
    shuffled = random.Random(0).sample(stems, len(stems))
    assert make_grouped_val_split(shuffled, fraction=0.1) == val
    assert make_grouped_val_split(stems, fraction=0.1, seed=1) != val


def test_groups_are_held_out_whole():
    val = make_grouped_val_split(STEMS, fraction=0.25, group_by=r'(.+)_\d+$')
    patients = {s.split('_')[0] for s in val}
    assert len(val) == 15 and len(patients) == 3  # 3 of 12 patients
    for p in patients:
        assert all(f'{p}_{i:04d}' in val for i in range(5))


def test_bad_groups_are_named():
    with pytest.raises(ValueError, match='no group'):
        make_grouped_val_split(STEMS, group_by=r'p\d+')
    with pytest.raises(ValueError, match='odd'):
        make_grouped_val_split(STEMS + ['odd'], group_by=r'(p\d+)_')
    with pytest.raises(ValueError, match='fraction'):
        make_grouped_val_split(STEMS, fraction=1.0)


def test_the_tool_writes_a_list_the_dataset_reads(tmp_path, capsys):
    images = tmp_path / 'TrainDataset' / 'images'
    images.mkdir(parents=True)
    for stem in STEMS:
        (images / f'{stem}.jpg').write_bytes(b'')
    out = tmp_path / 'val.txt'
    argv = ['--images', str(images), '--out', str(out), '--group-by',
            r'(.+)_\d+$']
    assert tool.main(argv) == 0
    assert f'wrote {out}' in capsys.readouterr().out
    val = read_split_file(str(out))
    assert val == make_grouped_val_split(STEMS, group_by=r'(.+)_\d+$')
    assert len(val) == 5  # one patient: 10 % of 60 images
    text = out.read_text()
    assert text.startswith(f'# Validation split of {images} (60 images): 5 '
                           'stems (8.3%)')
    assert "--group-by '(.+)_\\d+$'" in text  # the command, as typed
    assert tool.main(argv + ['--check']) == 0
    out.write_text(text.replace(val[0] + '\n', ''))
    assert tool.main(argv + ['--check']) == 1


def test_the_tool_refuses_what_would_go_wrong(tmp_path):
    images = tmp_path / 'images'
    images.mkdir()
    with pytest.raises(SystemExit):  # no --out
        tool.main(['--images', str(images)])
    with pytest.raises(SystemExit):  # the packaged PraNet split
        tool.main(['--images', str(images), '--out', PRANET_VAL_FILE])
    with pytest.raises(SystemExit, match='no image'):
        tool.main(['--images', str(images), '--out', str(tmp_path / 'v')])
    with pytest.raises(SystemExit, match='no folder'):
        tool.main(['--images', str(tmp_path / 'nope'), '--out',
                   str(tmp_path / 'v')])
    assert not os.path.exists(tmp_path / 'v')
