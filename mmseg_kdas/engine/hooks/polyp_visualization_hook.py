"""Draw every validation / test image as a polyp panel."""
import os.path as osp
from typing import Optional, Sequence

import mmcv
import mmengine.fileio as fileio
from mmseg.engine.hooks import SegVisualizationHook
from mmseg.registry import HOOKS
from mmseg.structures import SegDataSample


@HOOKS.register_module()
class PolypVisualizationHook(SegVisualizationHook):
    """Draw every validation / test image, named by test set and stem.

    Same as mmseg's ``SegVisualizationHook`` except that ``interval``
    defaults to 1 (one drawing per image) and the drawing of
    ``TestDataset/Kvasir/images/cju0.jpg`` is named ``Kvasir_cju0`` (the
    ``test_set`` meta key, else the mode), so that test sets sharing file
    names do not overwrite each other.

    Args:
        draw: Whether to draw (``tools/test.py --show-dir`` turns it on).
        interval: Draw the samples of every ``interval``-th batch.
        show: Display instead of saving.
        wait_time: Display time (s).
        backend_args: Arguments of the file backend reading the images.
    """

    def __init__(self,
                 draw: bool = False,
                 interval: int = 1,
                 show: bool = False,
                 wait_time: float = 0.,
                 backend_args: Optional[dict] = None) -> None:
        super().__init__(
            draw=draw,
            interval=interval,
            show=show,
            wait_time=wait_time,
            backend_args=backend_args)

    def _after_iter(self,
                    runner,
                    batch_idx: int,
                    data_batch: dict,
                    outputs: Sequence[SegDataSample],
                    mode: str = 'val') -> None:
        """Draw the outputs of one batch (not in training)."""
        if self.draw is False or mode == 'train':
            return
        if not self.every_n_inner_iters(batch_idx, self.interval):
            return
        for output in outputs:
            img_path = output.img_path
            img_bytes = fileio.get(img_path, backend_args=self.backend_args)
            img = mmcv.imfrombytes(img_bytes, channel_order='rgb')
            stem = osp.splitext(osp.basename(img_path))[0]
            prefix = output.metainfo.get('test_set', mode)
            self._visualizer.add_datasample(
                f'{prefix}_{stem}',
                img,
                data_sample=output,
                show=self.show,
                wait_time=self.wait_time,
                step=runner.iter)
