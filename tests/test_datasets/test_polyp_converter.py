"""tools/dataset_converters/polyp.py on fake downloads."""
import os
import os.path as osp
import shutil
import zipfile

import cv2
import numpy as np
import pytest
from conftest import ROOT, load_tool

from mmseg_kdas.datasets import PolypDataset, make_synthetic_polyp_dataset

converter = load_tool('tools/dataset_converters/polyp.py')


def zip_folder(folder, archive):
    with zipfile.ZipFile(archive, 'w') as z:
        for current, _, files in os.walk(folder):
            for name in files:
                path = osp.join(current, name)
                z.write(path, osp.relpath(path, osp.dirname(folder)))
    return archive


def make_raw(root, img_dir, mask_dir, stems, ext, size=(24, 32)):
    os.makedirs(osp.join(root, img_dir))
    os.makedirs(osp.join(root, mask_dir))
    rng = np.random.default_rng(0)
    masks = {}
    for stem in stems:
        img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        mask = np.zeros(size, np.uint8)
        mask[5:15, 8:20] = 255
        assert cv2.imwrite(osp.join(root, img_dir, stem + ext), img)
        assert cv2.imwrite(osp.join(root, mask_dir, stem + ext), mask)
        masks[stem] = mask
    return masks


def test_pranet_archives(tmp_path):
    src = make_synthetic_polyp_dataset(
        str(tmp_path / 'download'), num_train=3, num_test=2,
        test_sets=('Kvasir', 'CVC-300'))
    train_zip = zip_folder(
        osp.join(src, 'TrainDataset'), str(tmp_path / 'TrainDataset.zip'))
    test_zip = zip_folder(
        osp.join(src, 'TestDataset'), str(tmp_path / 'TestDataset.zip'))
    out = str(tmp_path / 'polyp')
    report = converter.main(['pranet', train_zip, test_zip, '-o', out])
    assert len(report) == 3
    assert sorted(os.listdir(osp.join(out, 'TestDataset'))) == \
        ['CVC-300', 'Kvasir']
    # images are copied byte for byte, masks rewritten as 0 / 255 PNG
    for sub in ('TrainDataset', 'TestDataset/Kvasir'):
        for name in os.listdir(osp.join(src, sub, 'images')):
            with open(osp.join(src, sub, 'images', name), 'rb') as a, \
                    open(osp.join(out, sub, 'images', name), 'rb') as b:
                assert a.read() == b.read()
    mask = cv2.imread(osp.join(out, 'TestDataset/CVC-300/masks/0001.png'), 0)
    np.testing.assert_array_equal(
        mask,
        cv2.imread(osp.join(src, 'TestDataset/CVC-300/masks/0001.png'), 0))
    dataset = PolypDataset(
        data_root=out,
        data_prefix=dict(
            img_path='TrainDataset/images',
            seg_map_path='TrainDataset/masks'))
    assert len(dataset) == 3
    # a second conversion into the same folder is a name clash
    with pytest.raises(FileExistsError, match='0000'):
        converter.main(['pranet', train_zip, '-o', out])


def test_raw_kvasir_seg_with_test_list(tmp_path):
    raw = str(tmp_path / 'Kvasir-SEG')
    masks = make_raw(raw, 'images', 'masks', ['cju1', 'cju2', 'cju3'],
                     '.jpg')
    archive = zip_folder(raw, str(tmp_path / 'kvasir-seg.zip'))
    (tmp_path / 'test.txt').write_text('cju2\n')
    out = str(tmp_path / 'polyp')
    converter.main([
        'kvasir-seg', archive, '-o', out, '--name', 'Kvasir', '--test-list',
        str(tmp_path / 'test.txt')
    ])
    assert os.listdir(osp.join(out, 'TestDataset/Kvasir/images')) == \
        ['cju2.jpg']
    assert sorted(os.listdir(osp.join(out, 'TrainDataset/masks'))) == \
        ['cju1.png', 'cju3.png']
    mask = cv2.imread(osp.join(out, 'TestDataset/Kvasir/masks/cju2.png'),
                      cv2.IMREAD_UNCHANGED)
    assert mask.ndim == 2 and set(np.unique(mask)) == {0, 255}
    # the JPEG mask binarised at 128 (JPEG noise removed)
    assert (mask != masks['cju2']).mean() < 0.02


def test_raw_cvc_clinicdb_tiff(tmp_path):
    raw = str(tmp_path / 'CVC-ClinicDB')
    make_raw(raw, 'Original', 'Ground Truth', ['1', '2'], '.tif')
    out = str(tmp_path / 'polyp')
    converter.main(['cvc-clinicdb', raw, '-o', out])
    images = sorted(os.listdir(osp.join(out, 'TestDataset/CVC-ClinicDB/'
                                        'images')))
    assert images == ['1.png', '2.png']  # TIFF frames stored as PNG
    img = cv2.imread(osp.join(out, 'TestDataset/CVC-ClinicDB/images/1.png'))
    np.testing.assert_array_equal(img, cv2.imread(osp.join(raw, 'Original',
                                                           '1.tif')))


def test_bad_downloads(tmp_path):
    raw = str(tmp_path / 'Kvasir-SEG')
    make_raw(raw, 'images', 'masks', ['a', 'b'], '.jpg')
    cv2.imwrite(osp.join(raw, 'masks', 'b.jpg'), np.zeros((5, 5), np.uint8))
    with pytest.raises(ValueError, match='b.jpg'):
        converter.main(['kvasir-seg', raw, '-o', str(tmp_path / 'o1')])
    os.remove(osp.join(raw, 'masks', 'b.jpg'))
    with pytest.raises(FileNotFoundError, match='b.jpg'):
        converter.main(['kvasir-seg', raw, '-o', str(tmp_path / 'o2')])
    with pytest.raises(FileNotFoundError, match='no TrainDataset'):
        converter.main(['pranet', raw, '-o', str(tmp_path / 'o3')])
    shutil.rmtree(osp.join(raw, 'masks'))
    with pytest.raises(FileNotFoundError, match='mask folder'):
        converter.main(['kvasir-seg', raw, '-o', str(tmp_path / 'o4')])


def test_check_lists_every_problem_in_one_pass(tmp_path, capsys):
    root = make_synthetic_polyp_dataset(
        str(tmp_path / 'polyp'), num_train=3, num_test=2, size=(24, 32),
        test_sets=('Kvasir', ))
    report = converter.main(['--check', root])
    assert report == [f'5 image / mask pairs in {root}: no problem']
    assert report[0] in capsys.readouterr().out

    train = osp.join(root, 'TrainDataset')
    # a mask of another size, a truncated image, a mask that is not one,
    # an image without its mask
    cv2.imwrite(osp.join(train, 'masks', '0000.png'),
                np.zeros((20, 32), np.uint8))
    cut = osp.join(train, 'images', '0001.jpg')
    with open(cut, 'rb') as f:
        data = f.read()
    with open(cut, 'wb') as f:
        f.write(data[:int(len(data) * 0.9)])
    with open(osp.join(train, 'masks', '0002.png'), 'wb') as f:
        f.write(b'not an image')
    os.remove(osp.join(root, 'TestDataset', 'Kvasir', 'masks', '0001.png'))
    with pytest.raises(ValueError) as err:
        converter.main(['--check', root])
    lines = str(err.value).splitlines()
    assert lines[0] == f'4 problem(s) in {root} (4 image / mask pairs read):'
    problems = '\n'.join(lines[1:])
    assert 'masks/0000.png is (20, 32)' in problems
    assert f'{cut} (truncated or corrupt)' in problems
    assert 'masks/0002.png' in problems
    assert 'Kvasir/images/0001.jpg has no mask' in problems


def test_check_command_line_exit_status(tmp_path, monkeypatch, capsys):
    import runpy
    import sys
    root = make_synthetic_polyp_dataset(
        str(tmp_path / 'polyp'), num_train=1, num_test=0, size=(24, 32))
    tool = osp.join(ROOT, 'tools/dataset_converters/polyp.py')

    def run(*args):
        monkeypatch.setattr(sys, 'argv', [tool, *args])
        try:
            runpy.run_path(tool, run_name='__main__')
        except SystemExit as e:
            return e.code
        return 0

    assert run('--check', root) == 0
    assert 'no problem' in capsys.readouterr().out
    cv2.imwrite(osp.join(root, 'TrainDataset', 'masks', '0000.png'),
                np.zeros((5, 5), np.uint8))
    status = run('--check', root)  # sys.exit(message): stderr, status 1
    assert status.startswith('error: 1 problem(s)') and '0000.png' in status
    assert run() == 2  # neither --check nor a source kind
