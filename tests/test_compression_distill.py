"""The fine-tune after pruning: distillation from the unpruned model (an auxiliary loss of
MultiTaskModel), and its learning-rate schedule."""

import copy
import math

import pytest
import torch
from torch import nn

from multitask_vision.compression.config import DistillConfig, FinetuneConfig
from multitask_vision.compression.data import lr_factor, make_finetune
from multitask_vision.compression.distill import HeadDistillation, leaf_groups, normalised_mse
from multitask_vision.compression.pruning import prune_channels
from multitask_vision.compression.testing import build_model, synthetic_batches


@pytest.fixture(scope="module")
def teacher():
    return build_model()


@pytest.fixture(scope="module")
def batch(teacher):
    return synthetic_batches(teacher, n=1, batch_size=2, size=64, seed=3, train=True)[0]


def _only(batch, tasks):
    samples = copy.deepcopy(batch["data_samples"])
    for s in samples:
        s.set_metainfo(dict(tasks=tuple(tasks)))
    return dict(batch, data_samples=samples)


def _pruned(teacher):
    student = copy.deepcopy(teacher)
    prune_channels(student, torch.zeros(1, 3, 64, 64), 0.3)
    return student


def test_normalised_mse_by_hand():
    t = [torch.tensor([0.0, 2.0]), torch.tensor([4.0, 6.0])]  # var of [0, 2, 4, 6] = 5
    s = [torch.tensor([1.0, 2.0]), torch.tensor([4.0, 3.0])]  # squared errors 1, 0, 0, 9
    assert float(normalised_mse(s, t)) == pytest.approx((10 / 4) / 5, rel=1e-5)


def test_leaf_groups_take_pyramid_levels_together():
    levels = [torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 4, 4)]
    fcos_like = (levels, [torch.zeros(1, 4, 8, 8)] * 2, [torch.zeros(1, 1, 8, 8)] * 2)
    assert [len(g) for g in leaf_groups(fcos_like)] == [2, 2, 2]
    assert [len(g) for g in leaf_groups(dict(a=torch.zeros(1), b=levels))] == [1, 2]
    assert [len(g) for g in leaf_groups(torch.zeros(3))] == [1]


def _norm_eval(model):
    """Training mode with BatchNorm on running statistics, as the teacher runs."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    return model


def test_identical_student_has_zero_loss_and_teacher_is_frozen(teacher, batch):
    student = _norm_eval(copy.deepcopy(teacher))
    aux = HeadDistillation(teacher)
    student.auxiliary_losses.append(aux)
    losses = student(batch["inputs"], batch["data_samples"], mode="loss")
    for task in ("detection", "segmentation", "depth"):
        assert float(losses[f"loss_distill_{task}"]) < 1e-10
    with torch.no_grad():
        student.blocks["seg_head"].conv_seg.bias.add_(0.5)
    losses = student(batch["inputs"], batch["data_samples"], mode="loss")
    assert float(losses["loss_distill_segmentation"]) > 1e-3
    assert float(losses["loss_distill_detection"]) < 1e-10
    assert not any(p.requires_grad for p in aux.teacher.parameters())
    assert all(p.requires_grad for p in teacher.parameters())  # the caller's model is untouched
    assert not teacher.training


def test_all_tasks_are_distilled_on_a_depth_only_batch(teacher, batch):
    student = _pruned(teacher).train()
    student.auxiliary_losses.append(HeadDistillation(teacher, weight=2.0, tasks="all"))
    losses = student(**_only(batch, ["depth"]), mode="loss")
    assert sorted(k for k in losses if k.startswith("loss_")) == [
        "loss_depth_silog",
        "loss_distill_depth",
        "loss_distill_detection",
        "loss_distill_segmentation",
    ]
    assert all(float(losses[k]) > 0 for k in losses if k.startswith("loss_distill"))
    sum(losses[k] for k in losses if k.startswith("loss_distill_detection")).backward()
    det = student.blocks["det_head"]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in det.parameters())
    student.zero_grad()

    student.auxiliary_losses[:] = [HeadDistillation(teacher, tasks="batch")]
    losses = student(**_only(batch, ["depth"]), mode="loss")
    assert sorted(k for k in losses if k.startswith("loss_")) == [
        "loss_depth_silog",
        "loss_distill_depth",
    ]


def test_weight_scales_the_loss(teacher, batch):
    student = _norm_eval(_pruned(teacher))
    values = []
    for w in (1.0, 3.0):
        student.auxiliary_losses[:] = [HeadDistillation(teacher, weight=w)]
        with torch.no_grad():
            values.append(float(student(**batch, mode="loss")["loss_distill_detection"]))
    assert values[1] == pytest.approx(3 * values[0], rel=1e-5)


def test_auxiliary_loss_key_clash_is_refused(teacher, batch):
    student = copy.deepcopy(teacher).train()

    class Clash:
        blocks = ()

        def __call__(self, graph_inputs, outs, data_samples):
            return {"loss_depth_silog": torch.tensor(0.0)}

    student.auxiliary_losses.append(Clash())
    with pytest.raises(KeyError, match="loss_depth_silog"):
        student(**batch, mode="loss")


def test_lr_factor_warmup_then_cosine_to_one_percent():
    cfg = FinetuneConfig(iters=101, warmup_iters=10)
    assert [lr_factor(i, cfg) for i in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(100, cfg) == pytest.approx(0.01)
    mid = 10 + 45
    assert lr_factor(mid, cfg) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi / 2)))
    factors = [lr_factor(i, cfg) for i in range(10, 101)]
    assert all(a >= b for a, b in zip(factors, factors[1:], strict=False))
    const = FinetuneConfig(iters=50, schedule="constant", warmup_iters=0)
    assert {lr_factor(i, const) for i in range(50)} == {1.0}


class _Preprocessed(nn.Module):
    def forward(self, data, training=False):  # the batches are already preprocessed
        return data


def test_finetune_distils_and_detaches(teacher):
    train = synthetic_batches(teacher, n=2, batch_size=2, size=64, seed=7, train=True)
    student = _pruned(teacher)
    student.data_preprocessor = _Preprocessed()
    lines: list[str] = []
    seeds: list[int] = []

    def loader(seed):  # built per fine-tune with its seed
        seeds.append(seed)
        return train

    finetune = make_finetune(
        loader, dict(optimizer=dict(type="SGD", lr=1e-2, momentum=0.9)), lines.append
    )
    cfg = FinetuneConfig(iters=4, lr=1e-3, warmup_iters=1, distill=DistillConfig(1.0, "all"),
                         seed=5, log_interval=2)  # fmt: skip
    before = [p.detach().clone() for p in teacher.parameters()]
    finetune(student, cfg, teacher)
    assert student.auxiliary_losses == []
    assert not student.training
    assert all(torch.equal(a, p) for a, p in zip(before, teacher.parameters(), strict=True))
    assert len(lines) == 2 and "loss_distill_segmentation=" in lines[-1]
    assert seeds == [5]
    with pytest.raises(ValueError, match="no teacher"):
        finetune(student, cfg, None)
