"""Every invalid model config is rejected before anything is built, with a message that names
the block, the key, the bad value and the valid choices."""

import copy

import pytest

from multitask_vision.model import GraphConfigError, parse_block_specs
from multitask_vision.multitask_model import validate_model_config
from multitask_vision.registry import find_block_type

BLOCKS = [
    dict(name="backbone", type="ResNet", scope="mmdet", inputs=["image"],
         args=dict(depth=18, out_indices=(0, 1, 2, 3))),
    dict(name="neck", type="FPN", scope="mmdet", inputs=["backbone"],
         args=dict(in_channels=[64, 128, 256, 512], out_channels=32, num_outs=4)),
    dict(name="det_head", type="FCOSHead", inputs=["neck"], task="detection",
         args=dict(num_classes=3, in_channels=32)),
    dict(name="seg_head", type="FCNHead", scope="mmseg", inputs=["backbone.3"],
         task="segmentation", args=dict(in_channels=512, channels=16, num_classes=4)),
]  # fmt: skip
LOSSES = dict(detection=dict(weight=1.0), segmentation=dict(weight=1.0))


def _blocks(**changes):
    """A copy of BLOCKS with ``{index: {key: value or None to delete}}`` applied."""
    blocks = copy.deepcopy(BLOCKS)
    for index, kv in changes.items():
        i = int(index.lstrip("b"))
        for k, v in kv.items():
            if v is None:
                blocks[i].pop(k, None)
            else:
                blocks[i][k] = v
    return blocks


def test_valid_config_passes():
    specs, adapters = validate_model_config(BLOCKS, LOSSES)
    assert [s.name for s in specs] == ["backbone", "neck", "det_head", "seg_head"]
    assert adapters["det_head"].protocol == "mmdet_dense_head"
    assert adapters["seg_head"].protocol == "mmseg_decode_head"
    assert adapters["neck"].protocol == "mmlab_module"


def test_unknown_type_names_closest_match_across_registries():
    with pytest.raises(GraphConfigError) as e:
        validate_model_config(_blocks(b2=dict(type="FCOSHed")), LOSSES)
    msg = str(e.value)
    assert "blocks[2] 'det_head': key 'type' value 'FCOSHed'" in msg
    assert "did you mean 'FCOSHead' (mmdet)" in msg


def test_unknown_type_case_insensitive_hint():
    with pytest.raises(GraphConfigError, match=r"'fcnhead'.*did you mean 'FCNHead' \(mmseg\)"):
        validate_model_config(_blocks(b3=dict(type="fcnhead", scope=None)), LOSSES)


def test_name_in_several_libraries_needs_scope():
    with pytest.raises(
        GraphConfigError,
        match=r"'FPN' is registered in several libraries "
        r"\(.*mmdet, mmseg\); add scope=",
    ):
        validate_model_config(_blocks(b1=dict(scope=None)), LOSSES)


def test_explicit_scope_and_dotted_prefix():
    assert find_block_type("FPN", "mmseg").scope == "mmseg"
    assert find_block_type("mmdet.FPN").scope == "mmdet"
    with pytest.raises(KeyError, match="unknown scope 'mmcls'; valid scopes: mtv, mmdet, mmseg"):
        find_block_type("FPN", "mmcls")


def test_duplicate_name():
    blocks = _blocks(b3=dict(name="neck"))
    with pytest.raises(
        GraphConfigError,
        match=r"blocks\[3\] 'neck': duplicate block name 'neck' \(first used by "
        r"blocks\[1\]\)",
    ):
        validate_model_config(blocks, LOSSES)


def test_input_naming_no_block():
    with pytest.raises(
        GraphConfigError,
        match=r"blocks\[2\] 'det_head': key 'inputs' value 'nekc' names no block "
        r"or graph input \(did you mean 'neck'\?\)",
    ):
        validate_model_config(_blocks(b2=dict(inputs=["nekc"])), LOSSES)


def test_input_naming_no_sub_output():
    with pytest.raises(
        GraphConfigError,
        match=r"blocks\[3\] 'seg_head': key 'inputs' value 'backbone.7': block "
        r"'backbone' \(ResNet\) has no sub-output '7'.*\['0', '1', '2', '3'\]",
    ):
        validate_model_config(_blocks(b3=dict(inputs=["backbone.7"])), LOSSES)


def test_cycle_names_its_blocks():
    blocks = _blocks(b0=dict(inputs=["neck"]))
    with pytest.raises(GraphConfigError, match=r"cycle: backbone -> neck -> backbone"):
        validate_model_config(blocks, LOSSES)


def test_head_without_task():
    with pytest.raises(
        GraphConfigError,
        match=r"blocks\[2\] 'det_head': key 'task' is missing: FCOSHead is a head "
        r"\(mmdet_dense_head\); add task='detection'",
    ):
        validate_model_config(_blocks(b2=dict(task=None)), dict(segmentation=dict(weight=1.0)))


def test_task_on_a_block_that_is_not_a_head():
    with pytest.raises(
        GraphConfigError,
        match=r"blocks\[1\] 'neck': key 'task' value 'depth': "
        r"FPN \(mmlab_module\) is not a head",
    ):
        validate_model_config(_blocks(b1=dict(task="depth")), LOSSES)


def test_task_without_loss_entry():
    with pytest.raises(
        GraphConfigError,
        match=r"task 'segmentation' \(head 'seg_head'\) has no "
        r"entry in model.losses",
    ):
        validate_model_config(BLOCKS, dict(detection=dict(weight=1.0)))


def test_loss_entry_without_head():
    losses = dict(LOSSES, detecton=dict(weight=0.5))
    with pytest.raises(
        GraphConfigError,
        match=r"model.losses key 'detecton': no head serves this "
        r"task; did you mean 'detection'\?",
    ):
        validate_model_config(BLOCKS, losses)


def test_bad_loss_weight_and_unknown_loss_key():
    losses = dict(detection=dict(weight=-1), segmentation=dict(wieght=1.0))
    with pytest.raises(GraphConfigError) as e:
        validate_model_config(BLOCKS, losses)
    msg = str(e.value)
    assert "model.losses['detection']: key 'weight' value -1 must be a number >= 0" in msg
    assert "model.losses['segmentation']: unknown key(s) ['wieght']" in msg


def test_all_problems_reported_at_once():
    blocks = _blocks(b2=dict(type="FCOSHed"), b3=dict(inputs=["backbone.9"]))
    with pytest.raises(GraphConfigError, match=r"\(2 problems\)"):
        validate_model_config(blocks, LOSSES)


def test_unknown_block_key_and_bad_adapter():
    blocks = _blocks(b1=dict(adaptor="native"), b2=dict(adapter="mmdet_dense_haed"))
    with pytest.raises(GraphConfigError) as e:
        validate_model_config(blocks, LOSSES)
    msg = str(e.value)
    assert "blocks[1] 'neck': unknown key(s) ['adaptor']" in msg
    assert (
        "blocks[2] 'det_head': key 'adapter' value 'mmdet_dense_haed' is not a registered "
        "adapter; did you mean 'mmdet_dense_head'?"
    ) in msg


def test_dead_block_is_reported():
    blocks = copy.deepcopy(BLOCKS) + [
        dict(name="extra", type="FPN", scope="mmdet", inputs=["backbone"],
             args=dict(in_channels=[64, 128, 256, 512], out_channels=8, num_outs=4))
    ]  # fmt: skip
    with pytest.raises(GraphConfigError, match=r"blocks\[4\] 'extra': no block takes its output"):
        validate_model_config(blocks, LOSSES)


def test_several_heads_for_one_task():
    blocks = _blocks(b3=dict(task="detection"))
    blocks[3].update(
        type="FCOSHead", scope=None, inputs=["neck"], args=dict(num_classes=3, in_channels=32)
    )
    with pytest.raises(
        GraphConfigError,
        match=r"task 'detection' is served by several heads "
        r"\['det_head', 'seg_head'\]",
    ):
        validate_model_config(blocks, dict(detection=dict(weight=1.0)))


@pytest.mark.parametrize(
    "blocks, message",
    [
        ([], r"model.blocks must be a non-empty list"),
        (
            [dict(name="a.b", type="X", inputs=["image"])],
            r"key 'name' must be a non-empty "
            r"string without '.'",
        ),
        (
            [dict(name="a", type="X", inputs=[])],
            r"blocks\[0\] 'a': key 'inputs' must be a "
            r"non-empty list of names, got \[\]",
        ),
        ([dict(name="a", type="X", inputs=["image"], args=3)], r"key 'args' must be a dict"),
        ([dict(name="a", type="X", inputs=["a"])], r"refers to the block itself"),
    ],
)
def test_structural_errors(blocks, message):
    _, problems = parse_block_specs(blocks)
    assert problems
    with pytest.raises(GraphConfigError, match=message):
        raise GraphConfigError(problems)
