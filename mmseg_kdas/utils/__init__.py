"""utils of mmseg_kdas."""
from .atomic import (atomic_dir, atomic_torch_save, atomic_write,
                     atomic_write_text, fsync_dir)

__all__ = [
    'atomic_dir', 'atomic_torch_save', 'atomic_write', 'atomic_write_text',
    'fsync_dir'
]
