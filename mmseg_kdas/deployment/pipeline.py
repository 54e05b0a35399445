"""Pre- and post-processing around an exported segmentor, as pure functions.

Both backends of ``tools/infer.py`` and ``pytorch2onnx.py --verify`` go
through these functions, so the only difference between the backends is
the network itself. They reproduce the test pipeline of the plugin's
configs: ``LoadImageFromFile`` (OpenCV, BGR) and ``Resize`` to the model
size without keeping the aspect ratio (``mmcv.imresize``, bilinear, with
the pipeline's backend); the graph then converts to float and normalises
(``SegDataPreProcessor``). On the way back the probability map is resized
to the image size and thresholded.

A ``'logits'`` graph (the default export) gives the head's logits before
its final resize; :func:`postprocess` then does what mmseg's ``predict``
does after the network, in one step: the head resizes its logits
bilinearly to the model size and ``postprocess_result`` resizes those to
the image size, then applies the sigmoid. Each bilinear resize is a linear
map along each axis (a matrix, :func:`bilinear_matrix`), so the two
resizes are one product of two small matrices per axis,
``A_h @ logits @ A_w.T`` (:func:`resize_matrices`): the probability map is
computed once, at the image size, and equals mmseg's up to float32
rounding. The mask needs no sigmoid: ``sigmoid(z) > t`` is ``z > log(t /
(1 - t))``.

A ``'prob'`` graph (``--output prob``) ends with the sigmoid at the model
size and its map is resized (bilinear): unlike mmseg, which resizes the
logits, so that mask boundaries can move by a fraction of a pixel.
"""
import functools
import math
from typing import Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np

from .spec import DeploySpec

__all__ = [
    'read_image', 'preprocess', 'bilinear_matrix', 'resize_matrices',
    'resize_logits', 'postprocess', 'probability_to_uint8', 'draw_overlay'
]


def read_image(path: str) -> np.ndarray:
    """Read an image as ``LoadImageFromFile`` does (OpenCV, BGR, uint8).

    Args:
        path: Image file.

    Returns:
        ``H x W x 3`` uint8 BGR array (grey images are expanded).

    Raises:
        ValueError: If the file cannot be decoded as an image.
    """
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise ValueError(f'{path}: cannot be decoded as an image')
    return img


def preprocess(images_bgr: Sequence[np.ndarray],
               spec: DeploySpec) -> np.ndarray:
    """Resize images to the model size: the graph's ``image`` input.

    Args:
        images_bgr: ``H x W x 3`` uint8 BGR images of any sizes.
        spec: The model's spec (size and resize backend).

    Returns:
        ``N x h x w x 3`` uint8 RGB batch, ``(h, w) = spec.input_size``.
    """
    h, w = spec.input_size
    batch = np.empty((len(images_bgr), h, w, 3), np.uint8)
    for i, img in enumerate(images_bgr):
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError('expected H x W x 3 uint8 BGR images, got '
                             f'{img.dtype} {img.shape}')
        resized = mmcv.imresize(
            img, (w, h), interpolation='bilinear',
            backend=spec.resize_backend)
        batch[i] = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
    return batch


def bilinear_matrix(src: int, dst: int, align_corners: bool) -> np.ndarray:
    """The ``dst x src`` matrix of a 1-D bilinear resize, as torch does it.

    ``F.interpolate(mode='bilinear')`` along one axis (no antialiasing,
    the coordinate rule of ``align_corners``, source positions in float32
    as torch's CPU kernel computes them; for ``False`` the scale is
    ``src / dst``, which is also that of an integer ``scale_factor`` whose
    product is ``dst``).

    Args:
        src: Input length.
        dst: Output length.
        align_corners: As ``F.interpolate``'s.

    Returns:
        float64 matrix ``M`` with ``resized = M @ signal``.
    """
    # source positions in float32, as torch's CPU kernel computes them
    out = np.arange(dst, dtype=np.float32)
    if align_corners:
        scale = np.float32((src - 1) / (dst - 1) if dst > 1 else 0.0)
        pos = out * scale
    else:
        scale = np.float32(src / dst)
        pos = np.maximum((out + np.float32(0.5)) * scale - np.float32(0.5),
                         np.float32(0))
    i0 = np.minimum(np.floor(pos).astype(np.int64), src - 1)
    i1 = np.minimum(i0 + 1, src - 1)
    lam = (pos - i0.astype(np.float32)).astype(np.float64)
    matrix = np.zeros((dst, src))
    np.add.at(matrix, (np.arange(dst), i0), 1.0 - lam)
    np.add.at(matrix, (np.arange(dst), i1), lam)
    return matrix


@functools.lru_cache(maxsize=32)
def resize_matrices(
        src: Tuple[int, int], steps: Tuple[Tuple[int, int], ...],
        align_corners: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Per-axis matrices of bilinear resizes done one after the other.

    Args:
        src: ``(h, w)`` of the map.
        steps: The sizes ``(H, W)`` it is resized to, in order.
        align_corners: Of every step.

    Returns:
        float32 ``(A_h, A_w)``, ``A_h`` of ``H_last x h`` and ``A_w`` of
        ``W_last x w``: ``A_h @ map @ A_w.T`` is the last resize's result.
    """
    rows, cols = np.eye(src[0]), np.eye(src[1])
    size = tuple(src)
    for step in steps:
        rows = bilinear_matrix(size[0], step[0], align_corners) @ rows
        cols = bilinear_matrix(size[1], step[1], align_corners) @ cols
        size = tuple(step)
    return rows.astype(np.float32), cols.astype(np.float32)


def resize_logits(logits: np.ndarray, image_size: Tuple[int, int],
                  spec: DeploySpec) -> np.ndarray:
    """A ``'logits'`` graph output at the image size, as mmseg resizes it.

    Args:
        logits: ``K x h x w`` output for one image.
        image_size: ``(H, W)`` of the original image.
        spec: The model's spec (sizes, ``align_corners``).

    Returns:
        ``K x H x W`` float32: the head's resize to the model size then
        mmseg's to the image size, as one linear map.
    """
    rows, cols = resize_matrices(spec.output_size,
                                 (spec.input_size, tuple(image_size)),
                                 spec.align_corners)
    # OpenCV's product, not NumPy's: under the threads of cv2.setNumThreads
    # (tools/infer.py: one), where OpenBLAS's own threads would compete
    # with the network's for the cores
    return np.stack([
        cv2.gemm(
            cv2.gemm(rows, np.ascontiguousarray(channel, np.float32), 1, None,
                     0), cols, 1, None, 0, flags=cv2.GEMM_2_T)
        for channel in logits
    ])


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out = np.negative(z)
    with np.errstate(over='ignore'):  # exp(-z) = inf: sigmoid 0
        np.exp(out, out=out)
    out += 1
    return np.reciprocal(out, out=out)


def _logit(p: float) -> float:
    """``z`` with ``sigmoid(z) = p`` (infinite at 0 and 1)."""
    if p <= 0 or p >= 1:
        return -math.inf if p <= 0 else math.inf
    return math.log(p / (1 - p))


def postprocess(output: np.ndarray,
                image_size: Tuple[int, int],
                spec: DeploySpec,
                with_prob: bool = True
                ) -> Tuple[Optional[np.ndarray], np.ndarray]:
    """Probability map and mask of one image at its own size.

    Args:
        output: ``K x h x w`` output of the graph for one image
            (probabilities or logits, after ``spec.output_kind``).
        image_size: ``(H, W)`` of the original image.
        spec: The model's spec (threshold, binary or not).
        with_prob: Compute the probability map; without it a binary
            ``'logits'`` output is only thresholded (no sigmoid).

    Returns:
        ``(prob, mask)`` at ``H x W``: for a binary model the float32
        foreground probability and a uint8 mask of 0 / 255; otherwise the
        ``H x W x K`` float32 softmax and the uint8 label map. ``prob`` is
        None when not asked for and not computed on the way.
    """
    expected = (spec.out_channels, *spec.output_size)
    if output.ndim != 3 or tuple(output.shape) != expected:
        raise ValueError(f'expected a {" x ".join(map(str, expected))} '
                         f'{spec.output_kind} map, got shape {output.shape}')
    h, w = image_size
    if spec.output_kind == 'logits':
        logits = resize_logits(output, image_size, spec)
        if spec.binary:
            mask = cv2.compare(logits[0], _logit(spec.threshold),
                               cv2.CMP_GT)
            return (_sigmoid(logits[0]) if with_prob else None), mask
        labels = logits.argmax(axis=0).astype(np.uint8)
        if not with_prob:
            return None, labels
        logits -= logits.max(axis=0, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=0, keepdims=True)
        return np.ascontiguousarray(logits.transpose(1, 2, 0)), labels
    chw = np.ascontiguousarray(output.transpose(1, 2, 0), np.float32)
    resized = cv2.resize(chw, (w, h), interpolation=cv2.INTER_LINEAR)
    if spec.binary:
        resized = resized.reshape(h, w)
        return resized, cv2.compare(resized, spec.threshold, cv2.CMP_GT)
    resized = resized.reshape(h, w, -1)
    return resized, resized.argmax(axis=2).astype(np.uint8)


def probability_to_uint8(prob: np.ndarray) -> np.ndarray:
    """A probability map in [0, 1] as an 8-bit image (``round(255 p)``)."""
    return np.clip(np.rint(prob * 255), 0, 255).astype(np.uint8)


def draw_overlay(image_bgr: np.ndarray,
                 mask: np.ndarray,
                 color: Tuple[int, int, int] = (0, 255, 0),
                 alpha: float = 0.35,
                 thickness: int = 2) -> np.ndarray:
    """The image with the foreground tinted and outlined, at video rate.

    The look of :func:`mmseg_kdas.visualization.overlay_mask` (equal up to
    rounding by 1), with OpenCV's blending and masked copy, inside the
    mask's bounding box, instead of NumPy's boolean indexing over the
    frame: about 1 ms for a 720 x 576 frame instead of tens.

    Args:
        image_bgr: ``H x W x 3`` uint8 image (not modified).
        mask: ``H x W`` mask, foreground where non-zero.
        color: Colour of the tint and the outline, in the image's order.
        alpha: Opacity of the tint.
        thickness: Outline width in pixels (0: no outline).

    Returns:
        A new ``H x W x 3`` uint8 image.
    """
    out = image_bgr.copy()
    fg = (mask > 0).view(np.uint8)
    x, y, w, h = cv2.boundingRect(fg)  # blend only where the mask is
    if w and h:
        roi = out[y:y + h, x:x + w]  # a view: written in place
        tint = np.empty_like(roi)
        tint[:] = color
        cv2.copyTo(
            cv2.addWeighted(roi, 1 - alpha, tint, alpha, 0),
            fg[y:y + h, x:x + w], roi)
    if thickness > 0:
        contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in color),
                         thickness)
    return out
