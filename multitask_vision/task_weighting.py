"""How the per-task losses are combined into the training objective.

Chosen in the model config with ``task_weighting=dict(type=...)`` (registered in ``LOSSES``):

- ``StaticTaskWeighting`` (default): the fixed weights of ``losses=dict(<task>=dict(weight=w))``.
- ``UncertaintyWeighting``: homoscedastic uncertainty (Kendall, Gal & Cipolla, CVPR 2018), in the
  form LibMTL uses: ``L = sum_t w_t * (L_t / (2 exp(s_t)) + s_t / 2)`` with learned ``s_t =
  log sigma_t^2``.
- ``DynamicWeightAverage``: DWA (Liu, Johns & Davison, CVPR 2019): ``lambda_k = K exp(r_k / T) /
  sum_i exp(r_i / T)`` with ``r_k = L_k(t-1) / L_k(t-2)``, the ratio of the task's mean loss over
  the last two windows of ``window`` iterations (the paper's epochs).

Every scheme multiplies by the static weights too, and logs the effective weight of each task as
``weight_<task>``. Tasks absent from a batch (another dataset's) are left out of that step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from mmengine.dist import all_reduce, get_world_size
from torch import nn

from .registry import LOSSES

__all__ = [
    "DynamicWeightAverage",
    "StaticTaskWeighting",
    "TaskWeighting",
    "UncertaintyWeighting",
    "build_task_weighting",
    "task_weighting_types",
]

TaskLosses = Mapping[str, Mapping[str, torch.Tensor]]


def _scale(value, w):
    if isinstance(value, (list, tuple)):
        return type(value)(v * w for v in value)
    return value * w


def _task_total(terms: Mapping[str, torch.Tensor]) -> torch.Tensor:
    total = 0
    for key, value in terms.items():
        if "loss" in key:
            total = total + (sum(value) if isinstance(value, (list, tuple)) else value)
    return total


class TaskWeighting(nn.Module):
    """Base: static weights applied to every ``loss`` term of a task; subclasses add a factor.

    Args:
        weights: task -> static weight (>= 0), from ``model.losses``.
    """

    def __init__(self, weights: Mapping[str, float]):
        super().__init__()
        self.tasks = list(weights)
        self.weights = dict(weights)

    def task_factors(self, task_losses: TaskLosses) -> dict[str, torch.Tensor | float]:
        """The dynamic factor of each present task (1 for static weighting)."""
        return {task: 1.0 for task in task_losses}

    def extra_losses(self, task_losses: TaskLosses) -> dict[str, torch.Tensor]:
        """Additional loss terms (regularisers), keyed ``loss_<task>_<term>``."""
        return {}

    def forward(self, task_losses: TaskLosses) -> dict:
        """Weighted loss terms of the tasks present in the batch.

        Args:
            task_losses: task -> ``{'loss_<task>_<term>': Tensor, '<task>_<logged>': Tensor}``.

        Returns:
            One flat dict: keys containing ``loss`` are weighted, logged values unchanged, plus
            ``weight_<task>`` (the effective weight, logged, not summed into the loss).
        """
        factors = self.task_factors(task_losses)
        out: dict = {}
        for task, terms in task_losses.items():
            w = self.weights[task] * factors[task]
            for key, value in terms.items():
                out[key] = _scale(value, w) if "loss" in key else value
            out[f"weight_{task}"] = torch.as_tensor(w).detach().float()
        out.update(self.extra_losses(task_losses))
        return out


@LOSSES.register_module()
class StaticTaskWeighting(TaskWeighting):
    """Fixed weights only (``model.losses``)."""


@LOSSES.register_module()
class UncertaintyWeighting(TaskWeighting):
    """Learned homoscedastic uncertainty per task (Kendall et al., 2018).

    Each task's loss is scaled by ``1 / (2 exp(s_t))`` and ``s_t / 2`` is added as
    ``loss_<task>_uncertainty``; ``s_t`` (``log_vars``) starts at ``init`` and is trained with
    the model (it must be in the optimizer: it is a parameter of the model).
    """

    def __init__(self, weights: Mapping[str, float], init: float = 0.0):
        super().__init__(weights)
        self.log_vars = nn.ParameterDict(
            {t: nn.Parameter(torch.tensor(float(init))) for t in self.tasks}
        )

    def task_factors(self, task_losses):
        return {t: 0.5 * torch.exp(-self.log_vars[t]) for t in task_losses}

    def extra_losses(self, task_losses):
        return {
            f"loss_{t}_uncertainty": self.weights[t] * 0.5 * self.log_vars[t] for t in task_losses
        }


@LOSSES.register_module()
class DynamicWeightAverage(TaskWeighting):
    """Dynamic Weight Average (Liu et al., 2019) over windows of training iterations.

    Args:
        weights: static weights.
        temperature: T; larger is smoother (the paper uses 2).
        window: iterations per window (the paper's epoch). Each task's mean loss over a window is
            recorded when the window closes; with fewer than two recorded windows the factor is 1.
    State (buffers, so it is checkpointed and resumed): the running sums of the open window and
    the means of the last two closed windows. Under DDP the window means are averaged over ranks,
    so every rank uses the same weights.
    """

    def __init__(self, weights: Mapping[str, float], temperature: float = 2.0, window: int = 100):
        super().__init__(weights)
        if temperature <= 0 or window < 1:
            raise ValueError(
                f"DynamicWeightAverage: temperature={temperature} must be > 0 and window={window} "
                ">= 1"
            )
        self.temperature = float(temperature)
        self.window = int(window)
        n = len(self.tasks)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("window_sum", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("window_count", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("history", torch.zeros(2, n, dtype=torch.float64))  # [t-2, t-1]
        self.register_buffer("num_windows", torch.zeros((), dtype=torch.long))

    def current_factors(self) -> dict[str, float]:
        """``lambda_k`` of every task from the recorded history (1 until two windows exist)."""
        if int(self.num_windows) < 2:
            return {t: 1.0 for t in self.tasks}
        prev2, prev1 = self.history
        ratios = [
            float(prev1[i] / prev2[i]) if prev2[i] > 0 else 1.0 for i in range(len(self.tasks))
        ]
        exps = [math.exp(r / self.temperature) for r in ratios]
        k, total = len(self.tasks), sum(exps)
        return {t: k * e / total for t, e in zip(self.tasks, exps, strict=True)}

    def record(self, task_losses: Mapping[str, float]) -> None:
        """Add one iteration's task losses (floats) to the open window; close it when full."""
        for task, value in task_losses.items():
            i = self.tasks.index(task)
            self.window_sum[i] += float(value)
            self.window_count[i] += 1
        self.step += 1
        if int(self.step) % self.window == 0:
            sums, counts = self.window_sum.clone(), self.window_count.clone()
            if get_world_size() > 1:
                all_reduce(sums)
                all_reduce(counts)
            means = torch.where(counts > 0, sums / counts.clamp(min=1), self.history[1])
            self.history[0] = self.history[1]
            self.history[1] = means
            self.num_windows += 1
            self.window_sum.zero_()
            self.window_count.zero_()

    def task_factors(self, task_losses):
        factors = self.current_factors()
        if self.training:
            self.record({t: float(_task_total(terms).detach()) for t, terms in task_losses.items()})
        return {t: factors[t] for t in task_losses}


def task_weighting_types() -> list[str]:
    return sorted(
        k
        for k, v in LOSSES.module_dict.items()
        if isinstance(v, type) and issubclass(v, TaskWeighting)
    )


def build_task_weighting(cfg: Mapping | None, weights: Mapping[str, float]) -> TaskWeighting:
    """Build the weighting named by ``cfg['type']`` (default static) with the static weights."""
    cfg = dict(cfg or {"type": "StaticTaskWeighting"})
    type_ = cfg.pop("type", "StaticTaskWeighting")
    if type_ not in task_weighting_types():
        raise KeyError(
            f"model.task_weighting type {type_!r} is not a task weighting; valid: "
            f"{task_weighting_types()}"
        )
    return LOSSES.get(type_)(weights, **cfg)
