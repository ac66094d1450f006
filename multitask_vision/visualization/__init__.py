"""Task visualizers, figures, contact sheets, the ``index.html`` page and the TensorBoard hook.

Importing this package registers the visualizers of ``detection``, ``segmentation`` and
``depth`` (``TASK_VISUALIZERS``) and ``MultiTaskVisualizationHook`` (``HOOKS``). See
``docs/visualization.md`` to add a visualizer for a new task.
"""

from .base import (
    ColorBar,
    Panel,
    TaskRender,
    TaskVisualizer,
    build_visualizers,
    get_visualizer,
    task_metas,
)
from .contact_sheet import contact_sheet, thumbnail
from .depth import DepthVisualizer, image_abs_rel
from .detection import DetectionVisualizer, draw_boxes, image_ap50
from .figure import SampleFigure, compose_figure, display_image, render_sample
from .hook import MultiTaskVisualizationHook
from .index_html import FigureEntry, write_index_html
from .report import (
    VisualizationReport,
    build_for_visualization,
    first_indices,
    write_visualizations,
)
from .segmentation import SegmentationVisualizer, image_miou, overlay_labels

__all__ = [
    "ColorBar",
    "DepthVisualizer",
    "DetectionVisualizer",
    "FigureEntry",
    "MultiTaskVisualizationHook",
    "Panel",
    "SampleFigure",
    "SegmentationVisualizer",
    "TaskRender",
    "TaskVisualizer",
    "VisualizationReport",
    "build_for_visualization",
    "build_visualizers",
    "compose_figure",
    "contact_sheet",
    "display_image",
    "draw_boxes",
    "first_indices",
    "get_visualizer",
    "image_abs_rel",
    "image_ap50",
    "image_miou",
    "overlay_labels",
    "render_sample",
    "task_metas",
    "thumbnail",
    "write_index_html",
    "write_visualizations",
]
