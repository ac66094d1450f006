"""Evaluation: per-dataset, per-task mmlab metrics and the multi-task summary."""

from .multitask_metric import GT_FIELDS, MultiTaskMetric
from .summary import LOWER_IS_BETTER, format_summary, is_lower_better, multitask_gain

__all__ = [
    "GT_FIELDS",
    "LOWER_IS_BETTER",
    "MultiTaskMetric",
    "format_summary",
    "is_lower_better",
    "multitask_gain",
]
