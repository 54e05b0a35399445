"""Models: backbones, decode heads, necks, losses and distillers."""
from . import backbones, decode_heads, distillers, losses, necks  # noqa: F401
