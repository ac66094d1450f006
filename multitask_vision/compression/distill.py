"""Distillation from the unpruned model during the fine-tune after pruning.

Structured pruning keeps every head's output layer, so the pruned model's raw head outputs
(class logits, box regression, centre-ness, segmentation logits, depth...) have the same shapes
as the unpruned model's. :class:`HeadDistillation` adds, per head, a normalised squared error to
the frozen teacher's outputs, averaged over the head's output groups:

    loss_distill_<task> = weight * mean_groups( mean((s - t)^2) / (var(t) + eps) )

A group is one output tensor, or a list of tensors of one kind (the pyramid levels of mmdet's
class scores, say), taken together. Dividing by the teacher's variance makes every output count
alike whatever its units (logits, pixels, metres); taking the levels of one output together
keeps a coarse level whose teacher output is nearly constant (a variance of 0.01 on 2 x 2
cells) from weighing 100x more than the others.

With ``tasks='all'`` every head is matched on every batch, so a depth-only batch still teaches
the detection and segmentation heads what the teacher predicted there; ``tasks='batch'``
matches only the heads the batch has ground truth for (cheaper). Distillation pays off when the
teacher is better than what the fine-tune alone reaches; on the demo model (1800 iterations, not
converged) the plain fine-tune scored higher (docs/deployment.md).

The teacher runs with the student's head semantics: in training mode (heads such as mmdet's
``FCOSHead`` return different tensors in eval mode) but with its normalisation and dropout
layers in eval mode, with no gradient.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .config import DISTILL_TASKS

__all__ = ["HeadDistillation", "leaf_groups", "normalised_mse"]

_EVAL_LAYERS = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.modules.dropout._DropoutNd,
)


def normalised_mse(
    student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], eps: float = 1e-6
) -> torch.Tensor:
    """``mean((s - t)^2) / (var(t) + eps)`` over all elements of a group of tensors, float32."""
    s = torch.cat([x.float().flatten() for x in student])
    t = torch.cat([x.float().flatten() for x in teacher])
    return (s - t).pow(2).mean() / (t.var(unbiased=False) + eps)


def leaf_groups(value) -> list[list[torch.Tensor]]:
    """A head output's tensors, grouped: a list / tuple of tensors is one group, any other
    tensor its own (nested containers are walked)."""
    if isinstance(value, torch.Tensor):
        return [[value]]
    if isinstance(value, Mapping):
        return [g for v in value.values() for g in leaf_groups(v)]
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, torch.Tensor) for v in value):
            return [list(value)]
        return [g for v in value for g in leaf_groups(v)]
    return []


class HeadDistillation:
    """An auxiliary loss of ``MultiTaskModel`` (see its ``auxiliary_losses``) matching the
    student's raw head outputs to a frozen copy of a teacher model.

    Args:
        teacher: a ``MultiTaskModel`` with the same heads and output shapes; deep-copied.
        weight: factor of each ``loss_distill_<task>``.
        tasks: ``'all'`` (every head on every batch) or ``'batch'`` (the batch's tasks only).
    """

    def __init__(self, teacher: nn.Module, weight: float = 1.0, tasks: str = "all"):
        if tasks not in DISTILL_TASKS:
            raise ValueError(f"tasks must be one of {list(DISTILL_TASKS)}, got {tasks!r}")
        self.teacher = copy.deepcopy(teacher)
        self.teacher.requires_grad_(False)
        self.teacher.train()
        for m in self.teacher.modules():
            if isinstance(m, _EVAL_LAYERS):
                m.eval()
        self.weight = float(weight)
        self.task_of = {head: task for task, head in teacher.heads.items()}
        self.blocks: tuple[str, ...] = tuple(self.task_of) if tasks == "all" else ()

    def __repr__(self) -> str:
        return f"HeadDistillation(weight={self.weight}, blocks={list(self.blocks)})"

    def __call__(
        self, graph_inputs: Mapping[str, torch.Tensor], outs: Mapping, data_samples: Sequence
    ) -> dict[str, torch.Tensor]:
        heads = [h for h in self.task_of if h in outs]
        with torch.no_grad():
            taught = self.teacher.blocks(dict(graph_inputs), heads)
        losses = {}
        for head in heads:
            student, teacher = leaf_groups(outs[head]), leaf_groups(taught[head])
            shapes = [[tuple(x.shape) for x in g] for g in student]
            if shapes != [[tuple(x.shape) for x in g] for g in teacher]:
                raise ValueError(
                    f"distillation: head {head!r} outputs {shapes} but the teacher's are "
                    f"{[[tuple(x.shape) for x in g] for g in teacher]}"
                )
            pairs = zip(student, teacher, strict=True)
            terms = torch.stack([normalised_mse(s, t) for s, t in pairs])
            losses[f"loss_distill_{self.task_of[head]}"] = self.weight * terms.mean()
        return losses
