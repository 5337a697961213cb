import numpy as np
import pytest

from stemsplit import masks
from stemsplit.errors import OptionError


def test_ideal_binary_mask_against_float64_reference():
    rng = np.random.default_rng(0)
    t = rng.standard_normal((5, 7)) + 1j * rng.standard_normal((5, 7))
    rest = rng.standard_normal((5, 7)) + 1j * rng.standard_normal((5, 7))
    ibm = masks.ideal_binary_mask(t.astype(np.complex64), (t + rest).astype(np.complex64))
    ref = np.array([[1.0 if abs(t[i, j]) > abs(rest[i, j]) else 0.0 for j in range(7)] for i in range(5)])
    np.testing.assert_array_equal(ibm, ref)


def test_magnitude_ratio_mask_against_float64_reference_and_the_binary_mask():
    rng = np.random.default_rng(2)
    t = rng.standard_normal((2, 5, 7)) + 1j * rng.standard_normal((2, 5, 7))
    rest = rng.standard_normal((2, 5, 7)) + 1j * rng.standard_normal((2, 5, 7))
    t[:, 0, 0] = rest[:, 0, 0] = 0  # silent bin: 0, not NaN
    mix = (t + rest).astype(np.complex64)
    got = masks.magnitude_ratio_mask(t.astype(np.complex64), mix, channel_axis=0)
    a, b = np.abs(t).mean(axis=0), np.abs(rest).mean(axis=0)
    ref = np.where(a + b > 0, a / np.where(a + b > 0, a + b, 1), 0.0)
    np.testing.assert_allclose(got, ref, atol=1e-6)
    ibm = masks.ideal_binary_mask(t.astype(np.complex64), mix, channel_axis=0)
    np.testing.assert_array_equal(got > 0.5, ibm == 1)


def test_ideal_ratio_mask_sums_to_one():
    rng = np.random.default_rng(1)
    s = rng.standard_normal((3, 4, 6)) + 1j * rng.standard_normal((3, 4, 6))
    s[:, 0, 0] = 0
    irm = masks.ideal_ratio_mask(s)
    np.testing.assert_allclose(irm.sum(0), 1.0, atol=1e-6)
    np.testing.assert_allclose(irm[:, 0, 0], 1 / 3)
    np.testing.assert_allclose(irm[:, 1, 1], np.abs(s[:, 1, 1]) ** 2 / (np.abs(s[:, 1, 1]) ** 2).sum(), rtol=1e-5)


def test_dominance_rule_partitions_bins():
    rng = np.random.default_rng(2)
    scores = rng.uniform(size=(4, 10, 12)).astype(np.float32)
    thresholds = [0.5, 0.6, 0.4, 0.5]
    owned = (scores >= np.array(thresholds)[:, None, None]).any(0)
    # score rule: the best-scoring claimant
    m, r = masks.combine(scores, thresholds=thresholds, rule="score")
    np.testing.assert_array_equal(m.sum(0) + r, 1.0)
    best = np.argmax(np.where(scores >= np.array(thresholds)[:, None, None], scores, -1), 0)
    for k in range(4):
        np.testing.assert_array_equal(m[k], ((best == k) & owned).astype(np.float32))
    # priority rule: the highest-priority claimant, whatever the others score
    prio = [10, 40, 20, 30]
    m, r = masks.combine(scores, thresholds=thresholds, priorities=prio, rule="priority")
    np.testing.assert_array_equal(m.sum(0) + r, 1.0)
    np.testing.assert_array_equal(r, (~owned).astype(np.float32))
    taken = np.zeros(owned.shape, bool)
    for k in np.argsort(prio)[::-1]:
        mine = (scores[k] >= thresholds[k]) & ~taken
        np.testing.assert_array_equal(m[k], mine.astype(np.float32))
        taken |= mine
    # lead rule (the default): the highest-priority target (1) keeps its claims, the rest goes by score
    m, r = masks.combine(scores, thresholds=thresholds, priorities=prio)
    np.testing.assert_array_equal(r, (~owned).astype(np.float32))
    lead = scores[1] >= thresholds[1]
    np.testing.assert_array_equal(m[1], lead.astype(np.float32))
    by_score = masks.combine(scores, thresholds=thresholds, priorities=prio, rule="score")[0]
    np.testing.assert_array_equal(m[:, ~lead], by_score[:, ~lead])
    # exhaustive: nothing left for the residual, whatever the thresholds; unclaimed bins go to the best score
    for rule in masks.COMBINE_RULES:
        m, r = masks.combine(scores, thresholds=[0.99] * 4, exhaustive=True, rule=rule)
        assert r.sum() == 0 and np.all(m.sum(0) == 1)
        np.testing.assert_array_equal(np.argmax(m, 0), scores.argmax(0))
    for rule in masks.COMBINE_RULES:  # claimed bins as without exhaustive
        m, r = masks.combine(scores, thresholds=thresholds, priorities=prio, exhaustive=True, rule=rule)
        claimed = masks.combine(scores, thresholds=thresholds, priorities=prio, rule=rule)[0]
        np.testing.assert_array_equal(m[:, owned], claimed[:, owned])
        assert r.sum() == 0 and np.all(m.sum(0) == 1)
    with pytest.raises(OptionError, match="rule"):
        masks.combine(scores, thresholds=thresholds, rule="loudest")
    m, r = masks.combine(scores, thresholds=[0.99] * 4, mode="soft", exhaustive=True)
    np.testing.assert_allclose(m.sum(0), 1.0, rtol=1e-6)


def test_dominance_rule_ties_follow_priority():
    scores = np.full((3, 2, 2), 0.7, np.float32)
    for rule in masks.COMBINE_RULES:
        m, _ = masks.combine(scores, thresholds=[0.5] * 3, priorities=[1, 5, 3], rule=rule)
        assert m[1].all() and not m[0].any() and not m[2].any()
    scores[0] = 0.9  # a lower-priority target scores higher: the score rule gives it the bins, the others do not
    assert masks.combine(scores, thresholds=[0.5] * 3, priorities=[1, 5, 3], rule="score")[0][0].all()
    for rule in ("lead", "priority"):
        assert masks.combine(scores, thresholds=[0.5] * 3, priorities=[1, 5, 3], rule=rule)[0][1].all()
    scores[1] = 0.2  # the lead does not claim: the score rule decides between the others, priority does not
    assert masks.combine(scores, thresholds=[0.5] * 3, priorities=[1, 5, 3])[0][0].all()
    assert masks.combine(scores, thresholds=[0.5] * 3, priorities=[1, 5, 3], rule="priority")[0][2].all()


def test_single_target_threshold():
    scores = np.array([[[0.2, 0.5, 0.9]]], np.float32)
    m, r = masks.combine(scores, thresholds=[0.5])
    np.testing.assert_array_equal(m[0], [[0, 1, 1]])
    np.testing.assert_array_equal(r, [[1, 0, 0]])
    assert m.dtype == r.dtype == np.float32 and m.shape == scores.shape
    for rule in ("lead", "priority", "score"):  # one target: every rule gives its claims
        np.testing.assert_array_equal(masks.combine(scores, thresholds=[0.5], rule=rule)[0], m)
    m, r = masks.combine(scores, thresholds=[0.5], exhaustive=True)  # no residual: the one target takes all
    np.testing.assert_array_equal(m[0], [[1, 1, 1]])
    np.testing.assert_array_equal(r, [[0, 0, 0]])


def test_soft_masks_sum_to_one():
    scores = np.array([[[0.9, 0.2]], [[0.8, 0.1]]], np.float32)
    m, r = masks.combine(scores, thresholds=[0.5, 0.5], mode="soft")
    np.testing.assert_allclose(m.sum(0) + r, 1.0, atol=1e-6)
    np.testing.assert_allclose(m[:, 0, 1], [0.2, 0.1])
    with pytest.raises(OptionError):
        masks.combine(scores, thresholds=[0.5, 0.5], mode="fuzzy")


def test_extend_band():
    s = np.zeros((2, 513, 3), np.float32)
    s[0, 256:] = 1.0
    e = masks.extend_band(s, 1025)
    assert e.shape == (2, 1025, 3)
    np.testing.assert_array_equal(e[:, :513], s)
    assert np.all(e[0, 513:] == 1.0) and np.all(e[1, 513:] == 0.0)
    assert masks.extend_band(s, 187).shape == (2, 187, 3)


def test_combine_on_grid_equals_extend_then_combine():
    rng = np.random.default_rng(5)
    scores = rng.uniform(size=(3, 513, 9)).astype(np.float32)
    for n_bins in (1025, 513, 187, 1115):
        for mode in ("binary", "soft"):
            kw = dict(thresholds=[0.5, 0.4, 0.6], priorities=[1, 3, 2], mode=mode)
            a = masks.combine_on_grid(scores, n_bins, **kw)
            b = masks.combine(masks.extend_band(scores, n_bins), **kw)
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])


def test_masks_keep_the_frame_by_frame_memory_order():
    """Scores laid out frame by frame (a transposed view, as the models give them) yield the same masks, in the
    same memory order, so that multiplying the spectrum (laid out the same way) reads memory in order."""
    rng = np.random.default_rng(6)
    frames_first = rng.uniform(size=(4, 11, 513)).astype(np.float32)
    scores = np.swapaxes(frames_first, 1, 2)  # (targets, bins, frames), frames-major in memory
    plain = np.ascontiguousarray(scores)
    for mode in ("binary", "soft"):
        for rule in masks.COMBINE_RULES:
            for exhaustive in (False, True):
                kw = dict(thresholds=[0.5, 0.4, 0.6, 0.5], priorities=[4, 3, 2, 1], mode=mode, rule=rule,
                          exhaustive=exhaustive)
                a, ra = masks.combine_on_grid(scores, 1025, **kw)
                b, rb = masks.combine_on_grid(plain, 1025, **kw)
                # the high band's mean may round differently in the other summation order (soft: 1 ulp)
                np.testing.assert_allclose(a, b, rtol=0, atol=0 if mode == "binary" else 1e-6)
                np.testing.assert_allclose(ra, rb, rtol=0, atol=0 if mode == "binary" else 1e-6)
                assert a.strides[-1] > a.strides[-2] and ra.strides[-1] > ra.strides[-2]
                assert b.flags.c_contiguous
