"""necks of mmseg_kdas."""
from .sgm_neck import SGMNeck, gram_embedding, transpose_embedding

__all__ = ['SGMNeck', 'gram_embedding', 'transpose_embedding']
