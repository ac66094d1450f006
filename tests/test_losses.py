"""Depth losses: closed forms, masking of invalid pixels, empty cases."""

import math

import pytest
import torch

from multitask_vision.losses import L1DepthLoss, SILogLoss, masked_l1_loss, silog_loss
from multitask_vision.registry import LOSSES


def _depth(seed: int = 0, shape=(2, 1, 6, 5)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) * 9 + 0.5


@pytest.mark.parametrize("lambd", [0.0, 0.5, 0.85])
@pytest.mark.parametrize("c", [2.0, 0.25])
def test_silog_of_scaled_prediction_has_closed_form(lambd, c):
    # d = log c at every pixel: sqrt(log^2 c - lambd log^2 c) = sqrt(1 - lambd) |log c|
    gt = _depth()
    loss = silog_loss(gt * c, gt, lambd=lambd)
    assert loss.item() == pytest.approx(math.sqrt(1 - lambd) * abs(math.log(c)), rel=1e-5)


def test_silog_is_scale_invariant_at_lambda_one_and_zero_for_exact_prediction():
    gt = _depth()
    assert silog_loss(gt * 3.0, gt, lambd=1.0).item() == pytest.approx(0.0, abs=1e-5)
    pred = gt.clone().requires_grad_()
    loss = silog_loss(pred, gt)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-5)
    assert torch.isfinite(pred.grad).all()


def test_silog_averages_images_and_skips_images_without_ground_truth():
    gt = _depth(shape=(3, 1, 4, 4))
    gt[2] = 0.0  # no ground truth at all in the third image
    pred = gt * torch.tensor([2.0, 0.5, 7.0]).view(3, 1, 1, 1)
    expected = math.sqrt(1 - 0.5) * (math.log(2) + math.log(2)) / 2
    assert silog_loss(pred, gt, lambd=0.5).item() == pytest.approx(expected, rel=1e-5)


def test_silog_matches_hand_computation_with_masked_pixels():
    gt = torch.tensor([[[[1.0, 2.0], [4.0, 0.0]]]])  # last pixel invalid
    pred = torch.tensor([[[[2.0, 2.0], [1.0, 123.0]]]])
    d = torch.tensor([math.log(2), 0.0, math.log(0.25)])
    expected = math.sqrt((d**2).mean() - 0.85 * d.mean() ** 2)
    assert silog_loss(pred, gt).item() == pytest.approx(expected, rel=1e-6)
    assert SILogLoss()(pred, gt).item() == pytest.approx(10 * expected, rel=1e-6)


@pytest.mark.parametrize("loss_fn", [silog_loss, masked_l1_loss], ids=["silog", "l1"])
def test_prediction_at_invalid_pixels_changes_neither_loss_nor_gradient(loss_fn):
    gt = _depth()
    gt[0, 0, :2] = 0.0
    gt[1, 0, 3, 1] = float("nan")
    invalid = ~(gt > 0)
    pred = _depth(seed=1).requires_grad_()
    loss = loss_fn(pred, gt)
    loss.backward()
    grad = pred.grad.clone()

    for junk in (0.0, 1e6, float("nan"), float("inf")):
        pred2 = torch.where(invalid, torch.tensor(junk), pred.detach()).requires_grad_()
        loss2 = loss_fn(pred2, gt)
        loss2.backward()
        assert loss2.item() == loss.item()
        assert torch.equal(pred2.grad, grad)
    assert (grad[invalid] == 0).all()
    assert (grad[~invalid] != 0).any()


@pytest.mark.parametrize("loss_fn", [silog_loss, masked_l1_loss], ids=["silog", "l1"])
def test_all_invalid_gives_exact_zero_connected_to_graph(loss_fn):
    pred = _depth().requires_grad_()
    loss = loss_fn(pred, torch.zeros_like(pred))
    assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()
    assert torch.equal(pred.grad, torch.zeros_like(pred))


def test_masked_l1_matches_hand_computation():
    gt = torch.tensor([[[[1.0, 2.0], [0.0, 4.0]]], [[[-1.0, 3.0], [0.0, 0.0]]]])
    pred = torch.tensor([[[[1.5, 1.0], [9.0, 4.0]]], [[[5.0, 5.0], [5.0, 5.0]]]])
    # valid pixels: 1.0, 2.0, 4.0 (image 0) and 3.0 (image 1): |0.5| + |1| + 0 + |2| over 4
    assert masked_l1_loss(pred, gt).item() == pytest.approx(3.5 / 4)
    assert L1DepthLoss(loss_weight=2.0)(pred, gt).item() == pytest.approx(3.5 / 2)
    # an extra mask restricts further
    mask = torch.ones_like(gt, dtype=torch.bool)
    mask[0, 0, 0, 1] = False
    assert masked_l1_loss(pred, gt, mask).item() == pytest.approx(2.5 / 3)


def test_losses_build_from_registry_and_validate():
    loss = LOSSES.build(dict(type="SILogLoss", lambd=0.5, loss_weight=1.0))
    assert isinstance(loss, SILogLoss) and loss.lambd == 0.5
    assert isinstance(LOSSES.build(dict(type="L1DepthLoss")), L1DepthLoss)
    with pytest.raises(ValueError, match=r"lambd must be in \[0, 1\], got 1.5"):
        SILogLoss(lambd=1.5)
    with pytest.raises(ValueError, match="upsample the prediction"):
        silog_loss(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 8, 8))
