"""The per-user random holdout split: deterministic, 80/10/10 per user, k-core, cached; ranking metrics."""
from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest
import torch

from llmrec.data.build import make_dataset
from llmrec.data.holdout import (HoldoutSplit, cut_points, evaluate_scores, exclusion_mask, get_holdout_split,
                                 holdout_split, k_core, top_items)
from llmrec.errors import LlmrecError
from llmrec.metrics import holdout_metrics, mean_interval, per_user_holdout_metrics

from planted_data import planted_dataset


def random_dataset(seed=0, n_users=40, n_items=30, n_rows=900):
    rng = np.random.default_rng(seed)
    raw = pd.DataFrame({"user": rng.integers(1, n_users + 1, n_rows), "item": rng.integers(1, n_items + 1, n_rows),
                        "rating": rng.integers(1, 6, n_rows).astype(float),
                        "timestamp": 1_000_000_000 + rng.integers(0, 10 ** 6, n_rows)})
    items = pd.DataFrame({"item": np.arange(1, n_items + 1), "title": [f"T{i}" for i in range(1, n_items + 1)],
                          "text": "g"})
    return make_dataset("rand", raw, items, "synthetic")


def test_split_is_deterministic_and_seed_dependent():
    ds = random_dataset()
    a, b = holdout_split(ds, seed=7), holdout_split(ds, seed=7)
    c = holdout_split(ds, seed=8)
    for part in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(a.part(part), b.part(part))
    assert not a.valid.equals(c.valid)


def test_parts_are_80_10_10_per_user_disjoint_and_cover_the_core():
    ds = random_dataset()
    s = holdout_split(ds, min_count=5)
    inter = ds.interactions
    pos = inter[inter["rating"] > 3][["user_id", "item_id"]].drop_duplicates()
    keep = k_core(pos["user_id"].to_numpy(), pos["item_id"].to_numpy(), 5)
    assert len(s.train) + len(s.valid) + len(s.test) == keep.sum()
    parts = {p: s.user_items(p) for p in ("train", "valid", "test")}
    for u in range(1, s.n_users):
        tr, va, te = (set(parts[p][u].tolist()) for p in ("train", "valid", "test"))
        assert not (tr & va or tr & te or va & te)
        n = len(tr) + len(va) + len(te)
        assert n >= 5  # 5-core
        # cumulative cuts at 80% and 90%, rounded half up: each part within one item of its share
        assert (len(tr), len(tr) + len(va)) == (math.floor(0.8 * n + 0.5), math.floor(0.9 * n + 0.5))
        assert abs(len(va) - 0.1 * n) < 1 and abs(len(te) - 0.1 * n) < 1 and abs(len(tr) - 0.8 * n) <= 0.5
    # split ids map back to the dataset's pairs, all with rating > 3
    src_u = dict(zip(s.users["user_id"], s.users["source_user_id"]))
    src_i = dict(zip(s.items["item_id"], s.items["source_item_id"]))
    back = {(src_u[u], src_i[i]) for p in ("train", "valid", "test")
            for u, i in s.part(p)[["user_id", "item_id"]].itertuples(index=False)}
    assert back == set(map(tuple, pos[keep].to_numpy().tolist()))


def test_cut_points_exact_for_ten_and_never_empty_train():
    assert cut_points(10, (0.8, 0.1, 0.1)) == (8, 9)
    assert cut_points(20, (0.8, 0.1, 0.1)) == (16, 18)
    assert cut_points(5, (0.8, 0.1, 0.1)) == (4, 5)  # valid gets the 5th, test none
    assert cut_points(1, (0.8, 0.1, 0.1)) == (1, 1)


def test_k_core_is_stable():
    rng = np.random.default_rng(1)
    u, i = rng.integers(0, 30, 300), rng.integers(0, 50, 300)
    keep = k_core(u, i, 4)
    assert (np.bincount(u[keep])[np.unique(u[keep])] >= 4).all()
    assert (np.bincount(i[keep])[np.unique(i[keep])] >= 4).all()


def test_bad_options_are_one_line_errors():
    ds = random_dataset()
    with pytest.raises(LlmrecError, match="fractions"):
        holdout_split(ds, fractions=(0.5, 0.1, 0.1))
    with pytest.raises(LlmrecError, match="rating > 9"):
        holdout_split(ds, threshold=9)
    with pytest.raises(LlmrecError, match="unknown option"):
        get_holdout_split("ml-100k", bogus=1)


def test_cache_roundtrip_is_atomic(llmrec_home, monkeypatch):
    ds = planted_dataset()
    import llmrec.data.splits as splits  # the shared split cache (cached_split) loads and keys the dataset

    calls = []
    monkeypatch.setattr(splits, "load_dataset", lambda name, **kw: calls.append(name) or ds)
    monkeypatch.setattr(splits, "dataset_cache_key", lambda name, **kw: {"name": name})
    a = get_holdout_split("planted")
    b = get_holdout_split("planted")
    assert calls == ["planted"]  # the second call read the cache
    for part in ("train", "valid", "test", "items", "users"):
        pd.testing.assert_frame_equal(getattr(a, part), getattr(b, part), check_dtype=False)
    assert (a.n_users, a.n_items) == (b.n_users, b.n_items)
    leftovers = [p for p in os.listdir(llmrec_home / "splits") if p.startswith(".")]
    assert leftovers == []


def test_metrics_skip_users_without_heldout_items_and_match_brute_force():
    topk = [[5, 1, 2, 3], [4, 3, 2, 1], [1, 2, 3, 4]]
    relevant = [{1, 9}, set(), {4}]
    m = holdout_metrics(topk, relevant)
    assert m["users"] == 2 and all(np.isfinite(v) for v in m.values())
    # user 1: 1 hit in top 20 of 2 relevant -> 0.5; user 3: hit -> 1.0
    assert m["recall@20"] == pytest.approx(0.75)
    dcg1 = 1 / np.log2(3)
    idcg1 = 1 + 1 / np.log2(3)
    assert m["ndcg@100"] == pytest.approx((dcg1 / idcg1 + 1 / np.log2(5)) / 2)


def test_intervals_are_user_bootstraps_of_the_per_user_values():
    rng = np.random.default_rng(0)
    n_items = 300
    topk = [rng.permutation(np.arange(1, n_items))[:100] for _ in range(400)]
    relevant = [set(rng.choice(np.arange(1, n_items), rng.integers(0, 8), replace=False).tolist()) for _ in topk]
    m = holdout_metrics(topk, relevant, intervals=True)
    plain = holdout_metrics(topk, relevant)
    assert {k: m[k] for k in plain} == plain  # the intervals only add keys
    per_user = per_user_holdout_metrics(topk, relevant)
    assert len(per_user["recall@20"]) == m["users"] == sum(1 for r in relevant if r)
    for name in ("recall@20", "recall@40", "ndcg@100"):
        assert per_user[name].mean() == pytest.approx(m[name])
        assert (m[f"{name}_lo"], m[f"{name}_hi"]) == mean_interval(per_user[name])
        assert m[f"{name}_lo"] < m[name] < m[f"{name}_hi"]
        # about two standard errors of a mean over these users each side
        se = per_user[name].std() / np.sqrt(len(per_user[name]))
        assert m[f"{name}_hi"] - m[f"{name}_lo"] == pytest.approx(2 * 1.96 * se, rel=0.15)
    # evaluate_scores passes the option through
    s = holdout_split(planted_dataset())
    e = evaluate_scores(s, "test", lambda u: torch.rand(len(u), s.n_items), intervals=True)
    assert e["recall@20_lo"] <= e["recall@20"] <= e["recall@20_hi"]


def test_train_items_are_excluded_from_rankings():
    s = holdout_split(planted_dataset())
    train = s.user_items("train")
    scores = torch.zeros(3, s.n_items)
    scores[:, :] = torch.arange(s.n_items, dtype=torch.float32)  # prefers high ids, including train ones
    users = [1, 2, 3]
    top = top_items(scores, exclusion_mask([train[u] for u in users], s.n_items), 20)
    for r, u in enumerate(users):
        assert not set(top[r].tolist()) & set(train[u].tolist())
        assert 0 not in top[r].tolist()


def test_evaluate_scores_never_nan_with_users_lacking_test_items():
    s = holdout_split(planted_dataset(per_user=5, noise=0), min_count=1)  # 4 train, 1 valid, 0 test
    assert len(s.test) == 0 and len(s.eval_users("valid")) == s.n_users - 1
    m = evaluate_scores(s, "valid", lambda u: torch.rand(len(u), s.n_items))
    assert all(np.isfinite(v) for v in m.values())
    with pytest.raises(LlmrecError, match="no user has test items"):
        evaluate_scores(s, "test", lambda u: torch.rand(len(u), s.n_items))


def test_matrix_matches_pairs():
    s = holdout_split(planted_dataset())
    m = s.matrix("train")
    assert m.shape == (s.n_users, s.n_items) and m.sum() == len(s.train)
    assert isinstance(HoldoutSplit.load, object)
