"""The deploy-only rewrites equal the model as trained (float32, CPU).

``mmseg_kdas/deployment/rewrites.py`` and the caller-side resize of
``mmseg_kdas/deployment/pipeline.py`` against the reference, on tiny
models whose batch-norm statistics are those of the generated images
(logits of tens, as a trained model's; see ``tests/deploy_helpers.py``).
Bounds asserted (what was measured is in the README, "Deploy"):

- the 1-D bilinear matrices against ``F.interpolate``: 1e-6;
- :class:`GridConvMlp` against ``ConvMlp``: 1e-5 on outputs of order 1;
- the rewritten model's probability maps at the images' own sizes
  (low-resolution logits, one resize to the image size, sigmoid) against
  mmseg's ``predict`` of the trained model (logits to the model size, to
  the image size, sigmoid): 1e-5, masks identical; the probability map at
  the model size (``--output prob``): 1e-5.

Each test also shows that its bound tells a wrong rewrite apart.
"""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import write_binary_dataset
from deploy_helpers import (PREPROCESSOR, SIZE, calibrate_batch_norm,
                            config_for, softmax_segformer, tiny_polyp_pvt)
from mmengine.config import Config

from mmseg_kdas.deployment.export import reference_difference
from mmseg_kdas.deployment.model import build_deploy_model, build_segmentor
from mmseg_kdas.deployment.pipeline import (bilinear_matrix, postprocess,
                                            read_image, resize_logits)
from mmseg_kdas.deployment.rewrites import GridConvMlp, rewrite_for_deploy
from mmseg_kdas.deployment.spec import DeploySpec
from mmseg_kdas.models.backbones.pvtv2_layers import ConvMlp
from mmseg_kdas.testing import tiny_binary_segformer

BOUND = 1e-5
#: Image sizes to resize to: smaller, larger and of another aspect than
#: the 64 x 64 model input, and the PAL video frame.
IMAGE_SIZES = [(40, 40), (50, 30), (33, 71), (576, 720)]


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- the caller's resize -----------------------------------------------------


@pytest.mark.parametrize('src,dst,align_corners', [
    (44, 352, False), (44, 352, True), (64, 40, False), (64, 71, False),
    (7, 13, True), (5, 1, True), (1, 5, False)
])
def test_bilinear_matrix_is_torch_interpolate(src, dst, align_corners):
    signal = torch.randn(
        1, 1, 1, src, generator=torch.Generator().manual_seed(0))
    expected = F.interpolate(
        signal, size=(1, dst), mode='bilinear', align_corners=align_corners)
    matrix = bilinear_matrix(src, dst, align_corners)
    np.testing.assert_allclose(
        matrix @ signal[0, 0, 0].double().numpy(),
        expected[0, 0, 0].numpy(),
        rtol=0,
        atol=1e-6)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)


def test_one_resize_equals_the_two_of_mmseg():
    """x8 (the head's ``output_upsample``) then to the image size."""
    logits = 10 * torch.randn(
        1, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    spec = DeploySpec(
        input_size=(64, 64),
        mean=[0] * 3,
        std=[1] * 3,
        output_kind='logits',
        output_name='logits',
        output_size=(8, 8))
    for size in IMAGE_SIZES:
        head = F.interpolate(
            logits, scale_factor=8, mode='bilinear', align_corners=False)
        expected = F.interpolate(
            head, size=size, mode='bilinear', align_corners=False)[0]
        actual = resize_logits(logits[0].numpy(), size, spec)
        np.testing.assert_allclose(
            actual, expected.numpy(), rtol=0, atol=BOUND)
        # one plain resize from 8 x 8 is not the same map
        direct = F.interpolate(
            logits, size=size, mode='bilinear', align_corners=False)[0]
        assert np.abs(direct.numpy() - expected.numpy()).max() > 100 * BOUND


# --- module swaps ------------------------------------------------------------


def test_grid_conv_mlp_equals_conv_mlp():
    torch.manual_seed(0)
    mlp = ConvMlp(16, 64).eval()
    hw = (6, 10)  # not square: a swapped grid would show
    x = torch.randn(2, hw[0] * hw[1], 16)
    with torch.no_grad():
        expected = mlp(x, hw)
        actual = GridConvMlp(mlp)(x, hw)
        swapped = GridConvMlp(mlp)(x, hw[::-1])
    assert expected.abs().max() > 0.1
    torch.testing.assert_close(actual, expected, rtol=0, atol=BOUND)
    assert (swapped - expected).abs().max() > 100 * BOUND


def test_rewrite_shares_weights_and_keeps_the_model():
    cfg = Config(dict(model=tiny_polyp_pvt(), default_scope='mmseg'))
    segmentor = build_segmentor(cfg)
    rewritten = rewrite_for_deploy(segmentor)
    grids = [m for m in rewritten.modules() if isinstance(m, GridConvMlp)]
    assert len(grids) == 4  # one block per stage
    assert not any(isinstance(m, GridConvMlp) for m in segmentor.modules())
    assert sum(isinstance(m, ConvMlp) for m in segmentor.modules()) == 4
    ours = dict(segmentor.named_parameters())
    shared = {p.data_ptr() for p in ours.values()}
    assert all(p.data_ptr() in shared for p in rewritten.parameters())


# --- whole models against mmseg's predict ------------------------------------


def generated_images(count: int = 4, seed: int = 5) -> list:
    """BGR images of :data:`IMAGE_SIZES` with a bright disk on noise."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        h, w = IMAGE_SIZES[i % len(IMAGE_SIZES)]
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        cv2.circle(img, (w // 2, h // 2), min(h, w) // 4, (40, 40, 220), -1)
        images.append(img)
    return images


@pytest.fixture(scope='module')
def images_dir(tmp_path_factory):
    return write_binary_dataset(str(tmp_path_factory.mktemp('rewrite_data')))


@pytest.fixture(scope='module', params=['polyp_pvt', 'sigmoid_segformer',
                                        'softmax_segformer'])
def trained(request, tmp_path_factory, images_dir):
    """Config and checkpoint of a tiny model with calibrated BN."""
    model = dict(
        polyp_pvt=tiny_polyp_pvt,
        sigmoid_segformer=lambda: tiny_binary_segformer(PREPROCESSOR),
        softmax_segformer=softmax_segformer)[request.param]()
    root = tmp_path_factory.mktemp(request.param)
    config = str(root / 'model.py')
    config_for(model, images_dir).dump(config)
    torch.manual_seed(0)
    segmentor = build_segmentor(Config.fromfile(config))
    folder = osp.join(images_dir, 'images')
    images = np.stack([
        cv2.resize(read_image(osp.join(folder, n)), (SIZE, SIZE))
        for n in sorted(os.listdir(folder))
    ])
    calibrate_batch_norm(segmentor, images)
    checkpoint = str(root / 'model.pth')
    torch.save(dict(state_dict=segmentor.state_dict()), checkpoint)
    return config, checkpoint


def as_numpy(model):
    def predict(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(batch)).numpy()

    return predict


def test_deployed_model_equals_mmseg_predict(trained):
    model, spec = build_deploy_model(*trained)
    assert spec.output_kind == 'logits' and spec.out_channels == 1
    assert spec.output_size[0] < spec.input_size[0]
    images = generated_images()
    with torch.inference_mode():
        peak = max(
            float(model.logits(torch.from_numpy(
                np.stack([cv2.resize(i, (SIZE, SIZE))
                          for i in images]))).abs().max()), 1e-9)
    assert 1 < peak < 100, peak  # calibrated: a trained model's range
    result = reference_difference(as_numpy(model), model, images,
                                  batch_size=2)
    assert result['max_abs_diff'] <= BOUND, result
    assert result['mask_pixels_differ'] == 0, result

    # the former deployment, the probability map resized, is not mmseg's
    prob_model, prob_spec = build_deploy_model(*trained, output='prob')
    assert prob_spec.output_kind == 'prob'
    old = reference_difference(as_numpy(prob_model), prob_model, images)
    assert old['max_abs_diff'] > 10 * BOUND, old


def test_deployed_prob_output_equals_the_model_as_trained(trained):
    model, spec = build_deploy_model(*trained, output='prob')
    plain, _ = build_deploy_model(*trained, output='prob', rewrite=False)
    batch = torch.from_numpy(
        np.stack([cv2.resize(i, (SIZE, SIZE)) for i in generated_images()
                  ])[..., ::-1].copy())
    with torch.inference_mode():
        expected = model._activate(model.logits(batch))
        actual = model(batch)
        untouched = plain(batch)
    assert actual.shape == (4, 1, SIZE, SIZE)
    torch.testing.assert_close(actual, expected, rtol=0, atol=BOUND)
    torch.testing.assert_close(untouched, expected, rtol=0, atol=BOUND)


def test_mask_needs_no_sigmoid(trained):
    model, spec = build_deploy_model(*trained)
    batch = np.stack([cv2.resize(i, (SIZE, SIZE))
                      for i in generated_images()])
    outputs = as_numpy(model)(batch)
    for output, size in zip(outputs, IMAGE_SIZES):
        prob, mask = postprocess(output, size, spec)
        none, same = postprocess(output, size, spec, with_prob=False)
        assert none is None
        np.testing.assert_array_equal(mask, same)
        np.testing.assert_array_equal(mask > 0, prob > spec.threshold)
