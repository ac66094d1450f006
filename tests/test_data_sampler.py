"""MultiTaskGroupSampler: strategies, homogeneous batches, determinism, DDP consistency."""

import itertools

import numpy as np
import pytest

import multitask_vision.data.sampler as sampler_module
from multitask_vision.data import (
    MultiTaskConcatDataset,
    MultiTaskGroupBatchSampler,
    MultiTaskGroupSampler,
    find_task_groups,
)
from multitask_vision.testing import toy_task_dataset

DET, DET_SEG, DEPTH_SEG = ("detection",), ("detection", "segmentation"), ("depth", "segmentation")


@pytest.fixture(scope="module")
def concat():
    # voc: 300 samples in two task sets (200 + 100); nyu: 100 samples.
    voc = toy_task_dataset("voc", {DET: 200, DET_SEG: 100})
    nyu = toy_task_dataset("nyu", {DEPTH_SEG: 100})
    return MultiTaskConcatDataset([voc, nyu])


def draw(sampler, batch_size, steps):
    return list(itertools.islice(sampler.iter_batches(batch_size), steps))


def group_of(groups):
    where = {}
    for k, g in enumerate(groups):
        for i in g.indices.tolist():
            where[i] = k
    return where


def batch_groups(sampler, batches):
    where = group_of(sampler.groups)
    out = []
    for b in batches:
        ks = {where[i] for i in b}
        assert len(ks) == 1, f"batch {b} mixes groups {ks}"
        out.append(ks.pop())
    return np.array(out)


def test_groups_are_dataset_and_task_set(concat):
    groups = find_task_groups(concat)
    assert [(g.name, len(g.indices)) for g in groups] == [
        ("voc:detection", 200),
        ("voc:detection+segmentation", 100),
        ("nyu:depth+segmentation", 100),
    ]
    assert groups[2].indices.min() == 300  # global indices after the 300 voc samples


# 20000 batches: the binomial standard deviation of a frequency is at most 0.0035; the tolerance
# 0.015 is over 4 sigma, and the draws are seeded, so the test is deterministic anyway.
TOL = 0.015


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (dict(strategy="proportional"), [0.5, 0.25, 0.25]),
        (dict(strategy="ratios", ratios=[1, 3]), [0.25 * 2 / 3, 0.25 / 3, 0.75]),
        (dict(strategy="ratios", ratios={"nyu": 1.0, "voc": 1.0}), [1 / 3, 1 / 6, 0.5]),
        # T=2: weights sqrt(300)=17.32 and sqrt(100)=10 -> P(voc)=0.634.
        (dict(strategy="temperature", temperature=2.0), [0.634 * 2 / 3, 0.634 / 3, 0.366]),
    ],
)
def test_strategy_frequencies_match_config(concat, kwargs, expected):
    sampler = MultiTaskGroupSampler(concat, seed=0, **kwargs)
    np.testing.assert_allclose(sampler.group_probs, expected, atol=1e-3)
    groups = batch_groups(sampler, draw(sampler, 4, 20000))
    freq = np.bincount(groups, minlength=3) / len(groups)
    np.testing.assert_allclose(freq, expected, atol=TOL)


def test_round_robin_alternates_datasets(concat):
    sampler = MultiTaskGroupSampler(concat, strategy="round_robin", seed=0)
    groups = batch_groups(sampler, draw(sampler, 4, 4000))
    datasets = np.array([sampler.groups[k].dataset_idx for k in groups])
    assert datasets[:6].tolist() == [0, 1, 0, 1, 0, 1]
    assert (datasets[0::2] == 0).all() and (datasets[1::2] == 1).all()
    voc = groups[0::2]  # within voc, groups by size: 2/3 detection-only
    assert abs((voc == 0).mean() - 2 / 3) < TOL * 2


def test_each_pass_over_a_group_is_a_permutation():
    ds = toy_task_dataset("one", {DET: 10})
    sampler = MultiTaskGroupSampler(ds, seed=3)
    flat = [i for b in draw(sampler, 5, 6) for i in b]  # 3 passes of 10
    for p in range(3):
        assert sorted(flat[10 * p : 10 * p + 10]) == list(range(10))
    assert flat[:10] != flat[10:20]  # reshuffled each pass


def test_deterministic_for_a_seed(concat):
    a = draw(MultiTaskGroupSampler(concat, seed=7), 4, 200)
    b = draw(MultiTaskGroupSampler(concat, seed=7), 4, 200)
    c = draw(MultiTaskGroupSampler(concat, seed=8), 4, 200)
    assert a == b
    assert a != c


def test_ddp_ranks_share_the_group_and_split_the_samples(concat, monkeypatch):
    per_rank = []
    for rank in range(2):
        monkeypatch.setattr(sampler_module, "get_dist_info", lambda rank=rank: (rank, 2))
        per_rank.append(MultiTaskGroupSampler(concat, seed=11))
    batches = [draw(s, 4, 500) for s in per_rank]
    g0, g1 = batch_groups(per_rank[0], batches[0]), batch_groups(per_rank[1], batches[1])
    assert (g0 == g1).all()  # same heads on every rank at every step
    for b0, b1 in zip(batches[0], batches[1], strict=True):
        assert not set(b0) & set(b1)  # disjoint samples
    # Together the two ranks walk one permutation: the first 25 steps of the nyu group (100
    # samples, 8 per step) hold 100 distinct samples on the first 12 steps.
    nyu_steps = [k for k, g in enumerate(g0) if g == 2][:12]
    seen = [i for k in nyu_steps for i in batches[0][k] + batches[1][k]]
    assert len(seen) == len(set(seen)) == 96


def test_batch_sampler_and_config_errors(concat):
    sampler = MultiTaskGroupSampler(concat, seed=0)
    batches = MultiTaskGroupBatchSampler(sampler, batch_size=4)
    assert len(next(iter(batches))) == 4
    assert len(batches) == 100  # one pass: 400 samples / (batch 4 x 1 rank)
    with pytest.raises(
        TypeError, match="batch_sampler=dict\\(type='MultiTaskGroupBatchSampler'\\)"
    ):
        iter(sampler)
    with pytest.raises(TypeError, match="needs sampler=dict\\(type='MultiTaskGroupSampler'"):
        MultiTaskGroupBatchSampler(range(4), batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        MultiTaskGroupBatchSampler(sampler, batch_size=0)
    with pytest.raises(
        ValueError, match="unknown strategy 'proportionnal'; did you mean 'proportional'"
    ):
        MultiTaskGroupSampler(concat, strategy="proportionnal")
    with pytest.raises(ValueError, match="3 ratios \\[1, 2, 3\\] for 2 datasets \\(voc, nyu\\)"):
        MultiTaskGroupSampler(concat, strategy="ratios", ratios=[1, 2, 3])
    with pytest.raises(ValueError, match="ratios names unknown dataset 'nyu2'; did you mean 'nyu'"):
        MultiTaskGroupSampler(concat, strategy="ratios", ratios={"nyu2": 1})
    with pytest.raises(ValueError, match="only used by strategy='ratios', not 'proportional'"):
        MultiTaskGroupSampler(concat, ratios=[1, 1])
    with pytest.raises(ValueError, match="strategy='temperature' needs temperature > 0"):
        MultiTaskGroupSampler(concat, strategy="temperature")
    with pytest.raises(ValueError, match="must be finite, >= 0, and not all 0"):
        MultiTaskGroupSampler(concat, strategy="ratios", ratios=[0, 0])


def test_concat_requires_unique_dataset_names():
    a, b = toy_task_dataset("voc", {DET: 2}), toy_task_dataset("voc", {DET: 2})
    with pytest.raises(ValueError, match="repeat \\['voc'\\]; give each dataset its own name"):
        MultiTaskConcatDataset([a, b])
