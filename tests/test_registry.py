"""Our registries are children of mmengine's: built under scope 'mtv', mmengine finds them."""

import pytest
import torch
from mmengine import registry as mme
from mmengine.registry import DefaultScope

from multitask_vision import registry as mtv


@pytest.mark.parametrize(
    "name",
    [
        "OPTIMIZERS", "OPTIM_WRAPPERS", "OPTIM_WRAPPER_CONSTRUCTORS", "PARAM_SCHEDULERS",
        "VISUALIZERS", "VISBACKENDS", "MODELS", "DATASETS", "HOOKS", "METRICS", "LOOPS",
    ],
)  # fmt: skip
def test_mmengine_resolves_scope_mtv_to_our_child_registry(name):
    # Without a child of scope 'mtv', mmengine falls back to its root and warns "Failed to
    # search registry with scope 'mtv'" each time it builds one (fine-tune, training, tests).
    root = getattr(mme, name)
    with (
        DefaultScope.overwrite_default_scope("mtv"),
        root.switch_scope_and_registry(None) as found,
    ):
        assert found is getattr(mtv, name)


def test_mmengine_types_build_through_our_children():
    params = [torch.nn.Parameter(torch.zeros(2))]
    with DefaultScope.overwrite_default_scope("mtv"):
        opt = mme.OPTIMIZERS.build(dict(type="AdamW", params=params, lr=0.1))
    assert isinstance(opt, torch.optim.AdamW)
