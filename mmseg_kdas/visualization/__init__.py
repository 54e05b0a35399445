"""Drawing polyp cases: image / ground truth / prediction panels."""
from .polyp_visualizer import (PolypLocalVisualizer, draw_polyp_panels,
                               overlay_mask)

__all__ = ['PolypLocalVisualizer', 'draw_polyp_panels', 'overlay_mask']
