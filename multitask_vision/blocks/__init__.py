"""Native blocks. Importing this package registers them all in ``registry.BLOCKS``.

Backbone: ``ResNetBackbone``. Neck: ``FPN``. Heads (``NativeHead``, with ``loss`` and
``predict``): ``FCOSLiteHead`` (detection), ``SegHead`` (segmentation), ``DenseDepthHead``
(depth).
"""

from multitask_vision.blocks.base import NativeBlock, NativeHead
from multitask_vision.blocks.depth_head import DenseDepthHead
from multitask_vision.blocks.fcos_head import FCOSLiteHead
from multitask_vision.blocks.fpn import FPN
from multitask_vision.blocks.resnet import ResNetBackbone
from multitask_vision.blocks.seg_head import SegHead

__all__ = [
    "FPN",
    "DenseDepthHead",
    "FCOSLiteHead",
    "NativeBlock",
    "NativeHead",
    "ResNetBackbone",
    "SegHead",
]
