"""Image / ground truth / prediction overlays of polyp segmentation.

MMSeg's ``SegLocalVisualizer`` blends a colour for every class, background
included, at ``alpha=0.8``: with a black background the endoscopy image is
dimmed to 20 %, class names are printed over it, and the image itself is not
shown. Its ``SegVisualizationHook`` names files by image basename only (the
PraNet test sets share names such as ``1.png``) and draws every 50th batch.
For a reader who wants to look at each case:

- :func:`draw_polyp_panels` puts three panels side by side: the image, the
  image with the ground truth (green, translucent, outlined) and the image
  with the prediction (the polyp colour of the palette, red by default)
  outlined together with the ground-truth contour, captioned with the Dice;
- :class:`PolypLocalVisualizer` draws data samples that way;
- :class:`~mmseg_kdas.engine.hooks.PolypVisualizationHook` draws every
  image (``interval=1``) and names the file ``<test set>_<image stem>``.

Config (``tools/test.py --show-dir DIR`` then writes one PNG per image
under ``DIR/vis_data/vis_image``)::

    visualizer = dict(type='PolypLocalVisualizer',
                      vis_backends=[dict(type='LocalVisBackend')],
                      name='visualizer')
    default_hooks = dict(visualization=dict(type='PolypVisualizationHook'))
"""
from typing import Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

__all__ = ['overlay_mask', 'draw_polyp_panels', 'PolypLocalVisualizer']

Color = Tuple[int, int, int]


def overlay_mask(image: np.ndarray,
                 mask: np.ndarray,
                 color: Color,
                 alpha: float = 0.35,
                 thickness: int = 2) -> np.ndarray:
    """Tint a region of an image and draw its outline.

    Args:
        image: RGB image ``(H, W, 3)`` uint8 (not modified).
        mask: Boolean region ``(H, W)``.
        color: RGB colour of the tint and the outline.
        alpha: Opacity of the tint (pixels outside the region are kept).
        thickness: Outline width in pixels (0: no outline).

    Returns:
        The drawn RGB image.
    """
    out = image.copy()
    if mask.any():
        tinted = (1 - alpha) * out[mask] + alpha * np.asarray(color, float)
        out[mask] = np.clip(np.rint(tinted), 0, 255).astype(np.uint8)
        if thickness > 0:
            draw_outline(out, mask, color, thickness)
    return out


def draw_outline(image: np.ndarray, mask: np.ndarray, color: Color,
                 thickness: int) -> None:
    """Draw the outline of a boolean region in place."""
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(image, contours, -1, tuple(int(c) for c in color),
                     thickness)


def _caption(image: np.ndarray, text: str) -> None:
    """Write a caption in the top-left corner, on a dark box, in place."""
    h, w = image.shape[:2]
    scale = max(0.3, min(h, w) / 700)
    thick = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale,
                                     thick)
    pad = max(2, th // 3)
    cv2.rectangle(image, (0, 0), (min(w - 1, tw + 2 * pad), th + base + pad),
                  (0, 0, 0), -1)
    cv2.putText(image, text, (pad, th + pad // 2), cv2.FONT_HERSHEY_SIMPLEX,
                scale, (255, 255, 255), thick, cv2.LINE_AA)


def draw_polyp_panels(image: np.ndarray,
                      gt: Optional[np.ndarray] = None,
                      pred: Optional[np.ndarray] = None,
                      gt_color: Color = (0, 255, 0),
                      pred_color: Color = (255, 0, 0),
                      alpha: float = 0.35,
                      captions: bool = True) -> np.ndarray:
    """Image, ground truth and prediction panels side by side.

    Args:
        image: RGB image ``(H, W, 3)`` uint8.
        gt: Ground-truth polyp region ``(H, W)`` (bool or 0 / 1), optional.
        pred: Predicted polyp region ``(H, W)`` (bool or 0 / 1), optional.
        gt_color: RGB colour of the ground truth.
        pred_color: RGB colour of the prediction.
        alpha: Opacity of the tints.
        captions: Write 'image', 'ground truth' and 'prediction' (with the
            Dice when the ground truth is given) on the panels.

    Returns:
        RGB image ``(H, W * P + gaps, 3)`` with ``P`` = 1 + one panel each
        for ``gt`` and ``pred``, separated by white gaps.
    """
    image = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    h, w = image.shape[:2]
    thickness = max(1, int(round(min(h, w) / 250)))
    panels = [(image.copy(), 'image')]
    gt_mask = None
    if gt is not None:
        gt_mask = np.asarray(gt).astype(bool)
        _check_size(gt_mask, (h, w), 'gt')
        panels.append((overlay_mask(image, gt_mask, gt_color, alpha,
                                    thickness), 'ground truth'))
    if pred is not None:
        pred_mask = np.asarray(pred).astype(bool)
        _check_size(pred_mask, (h, w), 'pred')
        drawn = overlay_mask(image, pred_mask, pred_color, alpha, thickness)
        text = 'prediction'
        if gt_mask is not None:
            draw_outline(drawn, gt_mask, gt_color, thickness)
            inter = np.logical_and(gt_mask, pred_mask).sum()
            total = gt_mask.sum() + pred_mask.sum()
            text += f' (Dice {2 * inter / total:.3f})' if total else ''
        panels.append((drawn, text))
    if captions:
        for panel, text in panels:
            _caption(panel, text)
    gap = np.full((h, max(2, w // 100), 3), 255, np.uint8)
    out = [panels[0][0]]
    for panel, _ in panels[1:]:
        out += [gap, panel]
    return np.concatenate(out, axis=1)


def _check_size(mask: np.ndarray, size: Tuple[int, int], what: str) -> None:
    if mask.shape != size:
        raise ValueError(f'{what} is {mask.shape}, the image {size}')


@VISUALIZERS.register_module()
class PolypLocalVisualizer(SegLocalVisualizer):
    """Visualiser drawing polyp cases as image / ground truth / prediction.

    Label 1 of ``gt_sem_seg`` and ``pred_sem_seg`` is the polyp. The
    prediction colour is the polyp colour of the dataset palette (red for
    ``PolypDataset``), the ground truth is green.

    Args:
        name: Name of the instance.
        gt_color: RGB colour of the ground truth.
        alpha: Opacity of the tints.
        **kwargs: Other arguments of ``SegLocalVisualizer``
            (``vis_backends``, ``save_dir`` ...).
    """

    def __init__(self,
                 name: str = 'visualizer',
                 gt_color: Sequence[int] = (0, 255, 0),
                 alpha: float = 0.35,
                 **kwargs) -> None:
        super().__init__(name=name, alpha=alpha, **kwargs)
        self.gt_color = tuple(int(c) for c in gt_color)

    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample: Optional[SegDataSample] = None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       step: int = 0,
                       with_labels: Optional[bool] = True) -> None:
        """Draw one case and save it to the backends (or ``out_file``).

        Args:
            name: Image identifier (file name stem in the backends).
            image: RGB image ``(H, W, 3)``.
            data_sample: Sample with ``gt_sem_seg`` and / or
                ``pred_sem_seg`` at the image size.
            draw_gt: Draw the ground-truth panel.
            draw_pred: Draw the prediction panel.
            show: Display the drawing instead of saving it.
            wait_time: Display time (s).
            out_file: Write the drawing to this file instead of the
                backends.
            step: Global step recorded by the backends.
            with_labels: Write panel captions.
        """
        gt = pred = None
        if data_sample is not None:
            if draw_gt and 'gt_sem_seg' in data_sample:
                gt = data_sample.gt_sem_seg.data[0].cpu().numpy() == 1
            if draw_pred and 'pred_sem_seg' in data_sample:
                pred = data_sample.pred_sem_seg.data[0].cpu().numpy() == 1
        palette = (self.dataset_meta or {}).get('palette') or []
        pred_color = tuple(int(c) for c in palette[1]) if len(palette) > 1 \
            else (255, 0, 0)
        drawn = draw_polyp_panels(
            image,
            gt,
            pred,
            gt_color=self.gt_color,
            pred_color=pred_color,
            alpha=self.alpha,
            captions=bool(with_labels))
        self.set_image(drawn)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mmcv.imwrite(mmcv.rgb2bgr(drawn), out_file)
        else:
            self.add_image(name, drawn, step)
