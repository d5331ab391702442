import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from llmrec import metrics


def brute_auc(y, s):
    pos, neg = s[y == 1], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_sklearn_and_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    s = rng.integers(0, 7, 300).astype(float)  # many ties
    assert metrics.auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert metrics.auc(y, s) == pytest.approx(brute_auc(y, s), abs=1e-12)


def test_auc_one_class_is_nan_and_length_mismatch_raises():
    assert np.isnan(metrics.auc([1, 1], [0.2, 0.3]))
    with pytest.raises(ValueError):
        metrics.auc([1, 0], [0.1])


def test_uauc_and_gauc_against_loop_reference():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 30, 500)
    y = rng.integers(0, 2, 500)
    s = rng.normal(size=500) + y
    users = np.r_[users, 100, 101, 101]  # degenerate users: one row; one class only
    y = np.r_[y, 1, 0, 0]
    s = np.r_[s, 0.5, 0.1, 0.2]
    aucs, imps, poss = [], [], []
    for u in np.unique(users):
        m = users == u
        if m.sum() < 2 or len(np.unique(y[m])) < 2:
            continue
        aucs.append(roc_auc_score(y[m], s[m])); imps.append(m.sum()); poss.append(y[m].sum())
    aucs, imps, poss = map(np.asarray, (aucs, imps, poss))
    assert metrics.uauc(users, y, s) == pytest.approx(aucs.mean())
    assert metrics.gauc(users, y, s) == pytest.approx((aucs * imps).sum() / imps.sum())
    assert metrics.gauc(users, y, s, weight="positives") == pytest.approx((aucs * poss).sum() / poss.sum())
    ids, _, _, _ = metrics.per_user_auc(users, y, s)
    assert 100 not in ids and 101 not in ids


def test_topk_metrics_brute_force():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(50, 40))
    target = rng.integers(0, 40, 50)
    ranks = metrics.rank_of_target(scores, target)
    order = np.argsort(-scores, axis=1)
    brute = np.array([int(np.flatnonzero(order[i] == target[i])[0]) + 1 for i in range(50)])
    np.testing.assert_array_equal(ranks, brute)
    for k in (1, 5, 10):
        assert metrics.hit_rate(ranks, k) == pytest.approx(np.mean(brute <= k))
        assert metrics.ndcg(ranks, k) == pytest.approx(np.mean([1 / np.log2(r + 1) if r <= k else 0 for r in brute]))
    assert metrics.mrr(ranks) == pytest.approx(np.mean(1 / brute))


def test_rank_ties_are_pessimistic():
    assert metrics.rank_of_target(np.zeros((1, 5)), [2])[0] == 5


def test_recall_and_multi_ndcg():
    topk = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]
    relevant = [{2, 9}, {100}, set()]  # third user has nothing held out: skipped, not NaN
    assert metrics.recall_at_k(topk, relevant, 2) == pytest.approx((1 / 2 + 0) / 2)
    disc = 1 / np.log2(np.arange(2, 6))
    expected = (disc[1] / disc[:2].sum() + 0) / 2
    assert metrics.ndcg_at_k_multi(topk, relevant, 4) == pytest.approx(expected)


def test_user_bootstrap_keeps_each_drawn_users_rows_together():
    from llmrec.metrics import user_bootstrap

    users = np.array([3, 1, 3, 2, 1, 3])
    rng = np.random.default_rng(0)  # the same draws as user_bootstrap(seed=0), rebuilt the naive way
    uniq = np.unique(users)
    for rows in user_bootstrap(users, n_boot=20, seed=0):
        pick = uniq[rng.integers(0, len(uniq), size=len(uniq))]
        expected = np.concatenate([np.flatnonzero(users == u) for u in pick])
        assert sorted(rows.tolist()) == sorted(expected.tolist())


def test_click_intervals_cover_the_estimate_and_shrink_with_more_users():
    from llmrec.metrics import click_intervals, paired_auc_difference

    def intervals(n_users):
        rng = np.random.default_rng(1)
        users = np.repeat(np.arange(n_users), 10)
        labels = rng.integers(0, 2, len(users))
        scores = labels * 0.5 + rng.normal(size=len(users))
        return roc_auc_score(labels, scores), click_intervals(users, labels, scores, n_boot=200), users, labels, scores

    est, small, *_ = intervals(30)
    assert small["auc_lo"] < est < small["auc_hi"]
    est, big, users, labels, scores = intervals(600)
    assert big["auc_lo"] < est < big["auc_hi"]
    assert big["auc_hi"] - big["auc_lo"] < 0.5 * (small["auc_hi"] - small["auc_lo"])
    assert big["uauc_lo"] < big["uauc_hi"]
    same = paired_auc_difference(users, labels, scores, scores, n_boot=50)
    assert same == {"diff": 0.0, "lo": 0.0, "hi": 0.0}
    worse = paired_auc_difference(users, labels, scores, np.random.default_rng(2).normal(size=len(users)), n_boot=200)
    assert worse["lo"] > 0.1  # a real signal against noise: the paired interval excludes zero


def test_auc_beyond_is_chance_for_a_reader_and_finds_what_a_score_adds():
    rng = np.random.default_rng(0)
    n = 6000
    reference = rng.integers(-8, 9, size=n) * 2.0  # a code inner product: few distinct values
    extra = rng.normal(size=n)  # what only the second score knows
    labels = (0.3 * reference + 2 * extra + rng.normal(size=n) > 0).astype(float)
    reader = reference + 0.5 * rng.normal(size=n)  # the reference, read with noise, and nothing else
    knower = reference + 2 * extra
    chance, rows = metrics.auc_beyond(labels, reader, reference)
    assert rows == n and abs(chance - 0.5) < 0.03
    assert metrics.auc_beyond(labels, knower, reference)[0] > 0.75
    # brute force: the pair-weighted mean of the within-value AUCs
    groups = [g for g in np.unique(reference) if 0 < labels[reference == g].sum() < (reference == g).sum()]
    pairs = [labels[reference == g].sum() * (1 - labels[reference == g]).sum() for g in groups]
    within = [roc_auc_score(labels[reference == g], knower[reference == g]) for g in groups]
    assert metrics.auc_beyond(labels, knower, reference)[0] == pytest.approx(np.average(within, weights=pairs))
    # a continuous reference: equal-count bins; a score that is the reference itself adds little within them
    cont = reference + rng.normal(size=n)
    assert metrics.auc_beyond(labels, cont, cont, bins=20)[0] < 0.6
    assert metrics.auc_beyond(labels, knower, cont, bins=20)[0] > 0.7
