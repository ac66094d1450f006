"""Training hooks of MultitaskVision (registered in ``multitask_vision.registry.HOOKS``)."""

from .rng_state import RNGStateHook
from .safe_checkpoint import SafeCheckpointHook
from .summary import MultiTaskSummaryHook
from .task_trace import TaskTraceHook

__all__ = ["MultiTaskSummaryHook", "RNGStateHook", "SafeCheckpointHook", "TaskTraceHook"]
