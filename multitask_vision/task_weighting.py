"""How the per-task losses are combined into the training objective."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["StaticTaskWeighting"]


class StaticTaskWeighting(nn.Module):
    """Multiply every loss term of a task by a fixed weight (``dict(depth=dict(weight=0.5))``).

    Args:
        weights: task -> weight (>= 0).
    """

    def __init__(self, weights: Mapping[str, float]):
        super().__init__()
        self.weights = dict(weights)

    def forward(self, task_losses: Mapping[str, Mapping[str, torch.Tensor]]) -> dict:
        """Weighted loss terms of the tasks present in the batch.

        Args:
            task_losses: task -> ``{'loss_<task>_<term>': Tensor, '<task>_<logged>': Tensor}``.

        Returns:
            One flat dict: keys containing ``loss`` are weighted, other (logged) values unchanged.
        """
        out: dict = {}
        for task, terms in task_losses.items():
            w = self.weights[task]
            for key, value in terms.items():
                out[key] = _scale(value, w) if "loss" in key else value
        return out


def _scale(value, w: float):
    if isinstance(value, (list, tuple)):
        return type(value)(v * w for v in value)
    return value * w
