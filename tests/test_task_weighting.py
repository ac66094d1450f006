"""Learned task weighting gives what the formulas give on a scripted loss history."""

import math

import pytest
import torch

from multitask_vision.task_weighting import (
    DynamicWeightAverage,
    StaticTaskWeighting,
    UncertaintyWeighting,
    build_task_weighting,
)


def _losses(**per_task):
    return {t: {f"loss_{t}_main": torch.tensor(float(v), requires_grad=True)}
            for t, v in per_task.items()}  # fmt: skip


def test_static_weights_scale_losses_only():
    w = StaticTaskWeighting(dict(detection=2.0, depth=0.5))
    task_losses = _losses(detection=3.0, depth=4.0)
    task_losses["detection"]["detection_acc"] = torch.tensor(77.0)
    out = w(task_losses)
    assert float(out["loss_detection_main"]) == 6.0
    assert float(out["loss_depth_main"]) == 2.0
    assert float(out["detection_acc"]) == 77.0  # logged values are not weighted
    assert float(out["weight_detection"]) == 2.0


def test_uncertainty_weighting_formula_and_gradient():
    w = UncertaintyWeighting(dict(detection=1.0, segmentation=2.0))
    with torch.no_grad():
        w.log_vars["detection"].fill_(0.5)
        w.log_vars["segmentation"].fill_(-1.0)
    out = w(_losses(detection=2.0, segmentation=3.0))
    assert float(out["loss_detection_main"]) == pytest.approx(2.0 / (2 * math.exp(0.5)))
    assert float(out["loss_segmentation_main"]) == pytest.approx(2.0 * 3.0 / (2 * math.exp(-1.0)))
    assert float(out["loss_detection_uncertainty"]) == pytest.approx(0.25)
    assert float(out["loss_segmentation_uncertainty"]) == pytest.approx(2.0 * 0.5 * -1.0)
    assert float(out["weight_detection"]) == pytest.approx(1 / (2 * math.exp(0.5)))
    total = sum(v for k, v in out.items() if k.startswith("loss"))
    total.backward()
    # d/ds [L / (2 e^s) + s / 2] = -L / (2 e^s) + 1/2
    g = w.log_vars["detection"].grad
    assert float(g) == pytest.approx(-2.0 / (2 * math.exp(0.5)) + 0.5)


def test_uncertainty_absent_task_gets_no_gradient():
    w = UncertaintyWeighting(dict(detection=1.0, depth=1.0))
    out = w(_losses(depth=1.0))
    assert not any(k.startswith("loss_detection") for k in out)
    sum(v for k, v in out.items() if k.startswith("loss")).backward()
    assert w.log_vars["detection"].grad is None
    assert w.log_vars["depth"].grad is not None


def test_dwa_weights_follow_the_formula():
    w = DynamicWeightAverage(dict(detection=1.0, segmentation=1.0), temperature=2.0, window=2)
    w.train()
    history = [(4.0, 1.0), (2.0, 1.0), (1.5, 2.0), (1.5, 2.0)]  # windows: (3, 1) then (1.5, 2)
    for det, seg in history:
        out = w(_losses(detection=det, segmentation=seg))
        assert float(out["weight_detection"]) == 1.0  # fewer than two windows closed
    out = w(_losses(detection=1.0, segmentation=1.0))
    r_det, r_seg = 1.5 / 3.0, 2.0 / 1.0
    e_det, e_seg = math.exp(r_det / 2), math.exp(r_seg / 2)
    expected_det = 2 * e_det / (e_det + e_seg)
    assert float(out["weight_detection"]) == pytest.approx(expected_det)
    assert float(out["weight_segmentation"]) == pytest.approx(2 - expected_det)
    assert float(out["loss_detection_main"]) == pytest.approx(expected_det * 1.0)


def test_dwa_windows_average_only_present_tasks_and_survive_state_dict():
    w = DynamicWeightAverage(dict(detection=1.0, depth=1.0), temperature=1.0, window=2)
    w.train()
    for det, depth in [(2.0, None), (None, 4.0), (1.0, None), (None, 8.0)]:
        losses = _losses(**{k: v for k, v in dict(detection=det, depth=depth).items() if v})
        w(losses)
    # window 1: detection mean 2, depth 4; window 2: detection 1, depth 8
    assert w.history.tolist() == [[2.0, 4.0], [1.0, 8.0]]
    restored = DynamicWeightAverage(dict(detection=1.0, depth=1.0), temperature=1.0, window=2)
    restored.load_state_dict(w.state_dict())
    assert restored.current_factors() == pytest.approx(w.current_factors())
    e1, e2 = math.exp(0.5), math.exp(2.0)
    assert w.current_factors()["detection"] == pytest.approx(2 * e1 / (e1 + e2))


def test_eval_mode_does_not_record():
    w = DynamicWeightAverage(dict(depth=1.0), window=1)
    w.eval()
    w(_losses(depth=1.0))
    assert int(w.num_windows) == 0


def test_bad_weighting_configs():
    with pytest.raises(
        KeyError,
        match=r"'uncertainity' is not a task weighting; valid: "
        r"\['DynamicWeightAverage', 'StaticTaskWeighting', 'UncertaintyWeighting'\]",
    ):
        build_task_weighting(dict(type="uncertainity"), dict(depth=1.0))
    with pytest.raises(ValueError, match=r"temperature=0 must be > 0"):
        DynamicWeightAverage(dict(depth=1.0), temperature=0)
