"""Protocol adapters: how the graph calls a block, computes its loss and reads its predictions.

The protocol is detected from where the block type came from (our registry, mmdet, mmseg) and
its base class; ``adapter='<name>'`` in a block config overrides the detection.
"""

from __future__ import annotations

from ..registry import ADAPTERS, BlockType
from .base import BlockAdapter, prefix_losses, require_field
from .mmdet_dense_head import MMDetDenseHeadAdapter
from .mmlab_module import MMLabModuleAdapter
from .mmseg_decode_head import MMSegDecodeHeadAdapter
from .native import NativeAdapter

__all__ = [
    "BlockAdapter",
    "MMDetDenseHeadAdapter",
    "MMLabModuleAdapter",
    "MMSegDecodeHeadAdapter",
    "NativeAdapter",
    "detect_adapter",
    "prefix_losses",
    "require_field",
]

# Most specific first: the first adapter whose ``matches`` accepts the class is the default.
_DETECTION_ORDER = (
    MMDetDenseHeadAdapter,
    MMSegDecodeHeadAdapter,
    MMLabModuleAdapter,
    NativeAdapter,
)


def detect_adapter(block_type: BlockType) -> type[BlockAdapter]:
    """The default adapter class for a resolved block type."""
    for adapter in _DETECTION_ORDER:
        if adapter.matches(block_type.cls, block_type.scope):
            return adapter
    return ADAPTERS.get("native")
