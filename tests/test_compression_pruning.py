"""Pruning: channels really removed (counts, shapes, wrapper attributes), masks that interoperate
with ``torch.nn.utils.prune``, and pruned checkpoints that load back."""

import pytest
import torch
from torch.nn.utils import prune

from multitask_vision.compression.checkpoint import load_deploy_checkpoint, save_checkpoint
from multitask_vision.compression.export import ExportModule
from multitask_vision.compression.pruning import (
    find_output_layers,
    mask_structured,
    mask_unstructured,
    prunable_layers,
    prune_channels,
    remove_masks,
    rounded_ratio,
    sparsity,
)
from multitask_vision.compression.testing import NATIVE_BLOCKS, build_model, synthetic_batches

X = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
OUTPUT_LAYERS = [
    "blocks.depth_head.conv_depth",
    "blocks.det_head.conv_centerness",
    "blocks.det_head.conv_cls",
    "blocks.det_head.conv_reg",
    "blocks.seg_head.conv_seg",
]


def _outputs(model):
    with torch.no_grad():
        return ExportModule(model).eval()(X)


@pytest.fixture(scope="module")
def pruned():
    model = build_model()
    ref = _outputs(model)
    result = prune_channels(model, X, amount=0.5)
    return model, ref, result


def test_output_layers_are_found_on_the_graph():
    assert sorted(find_output_layers(build_model(), X)) == OUTPUT_LAYERS


def test_structured_pruning_removes_half_the_channels(pruned):
    model, ref, result = pruned
    assert (result.params_before, result.params_after) == (765777, 193073)
    assert sum(p.numel() for p in model.parameters()) == 193073
    assert len(result.channels) == 36
    assert all(after == before // 2 for before, after in result.channels.values())
    b = model.blocks
    assert b["backbone"].conv1.weight.shape == (8, 3, 7, 7)
    assert b["backbone"].layer4[1].conv2.weight.shape == (64, 64, 3, 3)
    assert b["backbone"].layer4[1].bn2.num_features == 64
    # GroupNorm keeps its 4 groups: 16 -> 8 channels, 2 per group
    gn = b["det_head"].cls_convs[0].gn
    assert (gn.num_groups, gn.num_channels, gn.weight.shape[0]) == (4, 8, 8)
    # output layers: same outputs, fewer inputs
    assert b["det_head"].conv_cls.weight.shape == (3, 8, 3, 3)
    assert b["seg_head"].conv_seg.weight.shape == (4, 8, 1, 1)
    assert b["depth_head"].conv_depth.weight.shape == (1, 8, 3, 3)
    out = _outputs(model)
    assert [o.shape for o in out] == [o.shape for o in ref]


def test_wrapper_and_block_attributes_follow(pruned):
    model, _, _ = pruned
    b = model.blocks
    for name, m in model.named_modules():
        if type(m).__name__ == "ConvModule":
            assert (m.in_channels, m.out_channels) == (m.conv.in_channels, m.conv.out_channels), (
                name
            )
    assert b["neck"].in_channels == [8, 16, 32, 64] and b["neck"].out_channels == 8
    assert (b["det_head"].in_channels, b["det_head"].feat_channels) == (8, 8)
    assert (b["seg_head"].in_channels, b["seg_head"].channels) == (64, 8)
    assert b["depth_head"].in_channels == [8, 8]


def test_pruned_model_still_trains(pruned):
    model, _, _ = pruned
    batch = synthetic_batches(model, n=1, batch_size=2, size=64, train=True)[0]
    model.train()
    losses = model(batch["inputs"], batch["data_samples"], mode="loss")
    total = sum(v for k, v in losses.items() if "loss" in k)
    assert torch.isfinite(total)
    total.backward()
    assert model.blocks["backbone"].conv1.weight.grad.abs().sum() > 0
    model.eval()


def test_pruned_checkpoint_loads_into_a_fresh_model(pruned, tmp_path):
    model, _, _ = pruned
    path = str(tmp_path / "pruned.pth")
    save_checkpoint(model, path, {"pruning": {"physical": True, "amount": 0.5}})
    fresh = build_model(seed=1)
    loaded = load_deploy_checkpoint(fresh, path, X)
    assert loaded.pruned and loaded.qat is None
    for a, b in zip(_outputs(fresh), _outputs(model), strict=True):
        assert torch.equal(a, b)
    assert fresh.blocks["neck"].in_channels == [8, 16, 32, 64]
    assert fresh.blocks["det_head"].feat_channels == 8


def test_targets_limit_which_blocks_lose_output_channels():
    model = build_model()
    result = prune_channels(model, X, amount=0.5, targets=["backbone"])
    assert {n.split(".")[1] for n in result.channels} == {"backbone"}
    b = model.blocks
    assert b["backbone"].layer4[1].conv2.out_channels == 64
    assert [c.conv.out_channels for c in b["neck"].lateral_convs] == [16] * 4
    # the neck takes the backbone's smaller outputs
    assert [c.conv.in_channels for c in b["neck"].lateral_convs] == [8, 16, 32, 64]
    assert b["det_head"].cls_convs[0].conv.out_channels == 16


def test_round_to_keeps_the_nearest_multiple():
    # Torch-Pruning keeps int(C * (1 - ratio)) channels.
    def kept(c, amount, q):
        return int(c * (1 - rounded_ratio(c, amount, q)))

    assert [kept(c, 0.3, 16) for c in (32, 64, 128, 256, 512)] == [16, 48, 96, 176, 352]
    assert [kept(c, 0.3, 8) for c in (16, 32, 64, 128)] == [8, 24, 48, 88]
    assert kept(8, 0.3, 16) == 8 and rounded_ratio(8, 0.3, 16) == 0.0  # fewer than round_to
    assert rounded_ratio(64, 0.3, None) == 0.3

    model = build_model()
    ref = _outputs(model)
    result = prune_channels(model, X, amount=0.3, round_to=8)
    expected = {16: 8, 32: 24, 64: 48, 128: 88}
    assert {before: after for before, after in result.channels.values()} == expected
    assert all(after % 8 == 0 for _, after in result.channels.values())
    gn = model.blocks["det_head"].cls_convs[0].gn
    assert (gn.num_groups, gn.num_channels) == (4, 8)
    assert [o.shape for o in _outputs(model)] == [o.shape for o in ref]


def test_native_blocks_prune_with_shared_head_and_scales():
    model = build_model(NATIVE_BLOCKS)
    ref = _outputs(model)
    result = prune_channels(model, X, amount=0.3)
    head = model.blocks["det_head"]
    assert head.scales.shape == (4,)
    # Torch-Pruning keeps int(C * (1 - amount)) channels: 32 -> 22, 64 -> 44, 512 -> 358
    assert head.cls_convs[0][0].out_channels == 22
    assert (result.params_before, result.params_after) == (11302833, 5522359)
    assert model.blocks["fpn"].in_channels == [44, 89, 179, 358]
    assert model.blocks["backbone"].out_channels["layer4"] == 358
    assert [o.shape for o in _outputs(model)] == [o.shape for o in ref]


def test_unstructured_masks_interoperate_with_torch_prune():
    model = build_model()
    keys = set(model.state_dict())
    layers = prunable_layers(model, None, find_output_layers(model, X))
    assert len(layers) == 36
    mask_unstructured(layers, 0.4)
    assert prune.is_pruned(model)
    conv = model.blocks["backbone"].conv1
    assert hasattr(conv, "weight_orig") and hasattr(conv, "weight_mask")
    total = sum(m.weight.numel() for m in layers.values())
    zeros = sum(int((m.weight_mask == 0).sum()) for m in layers.values())
    assert zeros == round(0.4 * total)  # global: one threshold over all layers
    assert len({round(float((m.weight == 0).float().mean()), 2) for m in layers.values()}) > 3
    assert remove_masks(model) == 36
    assert not prune.is_pruned(model)
    assert set(model.state_dict()) == keys
    assert sparsity(layers.values()) == pytest.approx(0.4, abs=1e-6)


def test_structured_masks_zero_the_lowest_ln_channels():
    model = build_model()
    layers = prunable_layers(model, ["neck"], find_output_layers(model, X))
    assert sorted(layers) == [f"blocks.neck.{k}_convs.{i}.conv" for k in ("fpn", "lateral")
                              for i in range(4)]  # fmt: skip
    norms = {n: m.weight.detach().abs().flatten(1).sum(1) for n, m in layers.items()}
    mask_structured(layers, 0.25, norm=1)
    for name, m in layers.items():
        zero_rows = (m.weight_mask.flatten(1) == 0).all(1)
        assert int(zero_rows.sum()) == 4  # 25% of 16
        assert set(zero_rows.nonzero().flatten().tolist()) == set(
            norms[name].argsort()[:4].tolist()
        )
    remove_masks(model)
    assert not prune.is_pruned(model)
    assert model.blocks["neck"].fpn_convs[0].conv.weight.shape == (16, 16, 3, 3)  # not smaller
