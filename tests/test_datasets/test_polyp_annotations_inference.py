"""LoadPolypAnnotations in inference pipelines (no ground truth)."""
import numpy as np
import pytest

from mmseg_kdas.datasets import LoadPolypAnnotations


@pytest.mark.parametrize('results', [
    dict(img=np.zeros((4, 4, 3), np.uint8), ori_shape=(4, 4)),
    dict(img_path='a.jpg', seg_map_path=None, ori_shape=(4, 4)),
])
def test_sample_without_mask_passes_through(results):
    # mmseg.apis.inference_model and MMSegInferencer build the test
    # pipeline for images that have no mask.
    out = LoadPolypAnnotations()(dict(results))
    assert 'gt_seg_map' not in out
    assert out.keys() == results.keys()


def test_missing_mask_file_still_fails(tmp_path):
    with pytest.raises(OSError, match='nope.png'):
        LoadPolypAnnotations()(
            dict(seg_map_path=str(tmp_path / 'nope.png'), ori_shape=(4, 4)))
