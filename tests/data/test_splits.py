"""Click and sequence splits against brute-force references written from the protocol's words."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmrec.data.build import make_dataset
from llmrec.data.splits import (assign_parts, click_split, get_click_split, get_sequence_split, period_bounds,
                                sequence_split)
from llmrec.data.types import ClickSplit, SequenceSplit
from llmrec.errors import LlmrecError


def brute_history(inter: pd.DataFrame, keep: np.ndarray, threshold: float, max_history, ties: str) -> list:
    """For each kept row (source order): the user's kept positives before it, by (time, source row)."""
    rows = [r for r in range(len(inter)) if keep[r]]
    u = inter["user_id"].to_numpy()
    t = inter["timestamp"].to_numpy()
    it = inter["item_id"].to_numpy()
    pos = inter["rating"].to_numpy() >= threshold
    out = {}
    for r in rows:
        before = [s for s in rows if u[s] == u[r] and pos[s]
                  and (t[s] < t[r] if ties == "exclude" else (t[s], s) < (t[r], r))]
        before.sort(key=lambda s: (t[s], s))
        h = [it[s] for s in before]
        out[r] = h[-max_history:] if max_history else h
    return out


def _key(frame):
    return list(zip(frame["user_id"], frame["item_id"], frame["timestamp"]))


@pytest.mark.parametrize("ties", ["exclude", "row_order"])
@pytest.mark.parametrize("max_history", [None, 3])
def test_click_history_matches_brute_force(ds, ties, max_history):
    split = click_split(ds, cuts=(0.6, 0.8), threshold=4.0, max_history=max_history, history_ties=ties)
    inter = ds.interactions
    ref = brute_history(inter, np.ones(len(inter), bool), 4.0, max_history, ties)
    # rows are unique by (user, item, timestamp, source row); map each split row back to its source row
    order = np.lexsort((np.arange(len(inter)), inter["timestamp"], inter["user_id"]))
    sorted_rows = order.tolist()
    frames = [split.train, split.valid, split.test]
    got = pd.concat(frames, ignore_index=True)
    assert len(got) == len(inter)
    # the split keeps (user, time, row) order inside each part; rebuild the source row of each split row
    part = assign_parts(inter["timestamp"].to_numpy(), (0.6, 0.8), "x")
    expected_rows = [r for p in range(3) for r in sorted_rows if part[r] == p]
    for k, r in enumerate(expected_rows):
        assert got["user_id"].iloc[k] == inter["user_id"].iloc[r]
        assert got["item_id"].iloc[k] == inter["item_id"].iloc[r]
        assert got["history"].iloc[k].tolist() == ref[r], (k, r)
    assert (got["label"].to_numpy() == (inter["rating"].to_numpy()[expected_rows] >= 4)).all()


def test_ties_matter_on_this_data(ds):
    a = click_split(ds, cuts=(0.6, 0.8), history_ties="exclude")
    b = click_split(ds, cuts=(0.6, 0.8), history_ties="row_order")
    assert sum(len(x) for x in a.train["history"]) < sum(len(x) for x in b.train["history"])


def test_history_spans_parts_and_is_chronological():
    # one user: positives in train, valid and test periods; the test row sees all earlier ones
    raw = pd.DataFrame({"user": [1] * 5, "item": [10, 11, 12, 13, 14], "rating": [5, 5, 1, 5, 5],
                        "timestamp": [period_bounds("2000-01", "2000-01")[0] + 10,
                                      period_bounds("2000-02", "2000-02")[0],
                                      period_bounds("2000-02", "2000-02")[1] - 1,
                                      period_bounds("2000-03", "2000-03")[0],
                                      period_bounds("2000-05", "2000-05")[0]]})
    d = make_dataset("one", raw, None, "t")
    cuts = (("2000-01", "2000-01"), ("2000-02", "2000-02"), ("2000-03", "2000-04"))
    s = click_split(d, cuts=cuts, threshold=4)
    assert len(s.train) == 1 and len(s.valid) == 2 and len(s.test) == 1  # May row dropped (outside)
    assert s.meta["dropped"] == 1
    raw_of = lambda ids: [int(d.raw_item_ids[i - 1]) for i in ids]  # noqa: E731
    assert raw_of(s.test["history"].iloc[0]) == [10, 11]  # 12 is negative, 14 is outside the cuts
    assert s.valid["label"].tolist() == [1, 0]


def test_month_boundaries_are_inclusive_utc():
    lo, hi = period_bounds("2001-06", "2002-03")
    assert pd.Timestamp(lo, unit="s", tz="UTC") == pd.Timestamp("2001-06-01", tz="UTC")
    assert pd.Timestamp(hi, unit="s", tz="UTC") == pd.Timestamp("2002-04-01", tz="UTC")
    lo, hi = period_bounds("2002-12-31", "2002-12-31")
    assert hi - lo == 86_400
    ts = np.array([lo - 1, lo, hi - 1, hi])
    part = assign_parts(ts, (("2002-12-30", "2002-12-30"), ("2002-12-31", "2002-12-31"), ("2003-01", "2003-01")),
                        "x")
    assert part.tolist() == [0, 1, 1, 2]


def test_quantile_and_halved_cuts():
    ts = np.array([5, 1, 4, 2, 3, 9, 8, 7, 6, 0])
    part = assign_parts(ts, (0.5, 0.8), "x")
    assert sorted(ts[part == 0]) == [0, 1, 2, 3, 4]
    assert sorted(ts[part == 1]) == [5, 6, 7]
    assert sorted(ts[part == 2]) == [8, 9]
    day = 86_400
    base = period_bounds("2017-12", "2017-12")[0]
    ts = np.array([period_bounds("2017-03", "2017-03")[0], base + 5 * day, base + day, base + 3 * day,
                   base + 2 * day, period_bounds("2018-01", "2018-01")[0]])
    part = assign_parts(ts, (("2017-01", "2017-11"), ("2017-12", "2017-12")), "x")
    assert part.tolist() == [0, 2, 1, 2, 1, -1]  # December: 2 earliest valid, 2 latest test


def test_quantile_cuts_by_user():
    users = np.array([1, 2, 1, 2, 1, 1, 1, 2, 1, 1, 1, 1])
    ts = np.array([9, 1, 3, 9, 0, 1, 2, 5, 4, 5, 6, 7])  # user 1: 9 rows at 0..7 and 9; user 2: 1, 5, 9
    part = assign_parts(ts, (0.8, 0.9), "x", users=users)
    for u, n in ((1, 9), (2, 3)):  # brute force: each user's first round(0.8 n) rows train, up to round(0.9 n) valid
        mine = np.flatnonzero(users == u)
        by_time = mine[np.argsort(ts[mine], kind="stable")]
        expected = [0 if k < round(0.8 * n) else 1 if k < round(0.9 * n) else 2 for k in range(n)]
        assert part[by_time].tolist() == expected
    with pytest.raises(LlmrecError, match="quantile cuts"):
        assign_parts(ts, (("2001-01", "2001-06"), ("2001-07", "2001-08"), ("2001-09", "2001-10")), "x", users=users)


def test_split_by_user_puts_test_users_in_train(ds):
    split = click_split(ds, cuts=(0.6, 0.8), cut_by="user")
    assert split.test["user_id"].isin(split.train["user_id"]).all()
    assert len(split.train) + len(split.valid) + len(split.test) == len(ds.interactions)
    last_train = split.train.groupby("user_id")["timestamp"].max()
    first_test = split.test.groupby("user_id")["timestamp"].min()
    assert (last_train[first_test.index] <= first_test).all()  # within a user, train comes before test


@pytest.mark.parametrize("bad", [(0.9, 0.5), (0.0, 0.5), (("2001-13", "2002-01"),) * 3, "2001",
                                 (("2001-01", "2001-06"), ("2001-05", "2001-08"), ("2001-09", "2001-10"))])
def test_bad_cuts(ds, bad):
    with pytest.raises(LlmrecError, match="cuts"):
        click_split(ds, cuts=bad)


def test_empty_part_and_no_positive_errors(ds):
    with pytest.raises(LlmrecError, match="no valid rows"):
        click_split(ds, cuts=(("1990-01", "2030-01"), ("2031-01", "2031-02"), ("2032-01", "2032-02")))
    with pytest.raises(LlmrecError, match="rating >= 9"):
        click_split(ds, cuts=(0.5, 0.7), threshold=9)


def test_valid_small_and_warm(ds):
    s = click_split(ds, cuts=(0.6, 0.8), valid_small_fraction=0.5, seed=7)
    again = click_split(ds, cuts=(0.6, 0.8), valid_small_fraction=0.5, seed=7)
    other = click_split(ds, cuts=(0.6, 0.8), valid_small_fraction=0.5, seed=8)
    assert len(s.valid_small) == round(len(s.valid) * 0.5)
    assert _key(s.valid_small) == _key(again.valid_small)
    assert _key(s.valid_small) != _key(other.valid_small)
    assert set(_key(s.valid_small)) <= set(_key(s.valid))
    counts_u = s.train["user_id"].value_counts()
    counts_i = s.train["item_id"].value_counts()
    for f in (s.valid, s.test):
        u = f["user_id"].map(counts_u).fillna(0)
        i = f["item_id"].map(counts_i).fillna(0)
        assert (f["warm"] == ((u >= 3) & (i >= 3))).all()
        assert (f["not_cold"] == ((u > 0) & (i > 0))).all()
    assert s.train["not_cold"].all()


def test_click_split_columns_and_roundtrip(ds, tmp_path):
    s = click_split(ds, cuts=(0.7, 0.85), max_history=5)
    for p in ("train", "valid", "valid_small", "test"):
        f = s.part(p)
        assert list(f.columns) == ["user_id", "item_id", "label", "timestamp", "history", "warm", "not_cold"]
        assert f["label"].dtype == np.int8
        assert max(len(h) for h in f["history"]) <= 5
    s.save(tmp_path / "split")
    t = ClickSplit.load(tmp_path / "split")
    for p in ("train", "valid", "valid_small", "test"):
        a, b = s.part(p), t.part(p)
        assert _key(a) == _key(b)
        assert all(np.array_equal(x, y) for x, y in zip(a["history"], b["history"]))
    assert t.meta["cuts"] == [0.7, 0.85] and t.meta["history_ties"] == "exclude"


def brute_sequences(inter, min_n, max_len, threshold):
    out = {}
    for u, g in inter.assign(row=np.arange(len(inter))).groupby("user_id"):
        if threshold is not None:
            g = g[g["rating"] >= threshold]
        g = g.sort_values(["timestamp", "row"])
        items = g["item_id"].tolist()
        if len(items) >= min_n:
            train = items[:-2]
            out[u] = (train[-max_len:] if max_len else train, items[-2], items[-1])
    return out


@pytest.mark.parametrize("threshold", [None, 4.0])
@pytest.mark.parametrize("max_len", [None, 4])
def test_sequence_split_matches_brute_force(make_ds, threshold, max_len):
    d = make_ds(n_users=25, n_rows=300, seed=3)
    s = sequence_split(d, max_length=max_len, min_interactions=5, positive_threshold=threshold)
    ref = brute_sequences(d.interactions, 5, max_len, threshold)
    assert s.users["user_id"].tolist() == sorted(ref)
    for row in s.users.itertuples():
        train, valid, test = ref[row.user_id]
        assert row.train.tolist() == train and row.valid == valid and row.test == test
    inter = d.interactions if threshold is None else d.interactions[d.interactions["rating"] >= threshold]
    assert s.meta["dropped_users"] == inter["user_id"].nunique() - len(ref)


def test_sequence_ties_keep_source_order():
    raw = pd.DataFrame({"user": [1, 1, 1, 1], "item": [4, 3, 2, 1], "timestamp": [5, 5, 5, 5]})
    d = make_dataset("t", raw, None, "t")
    s = sequence_split(d)
    raw_of = lambda i: d.raw_item_ids[i - 1]  # noqa: E731
    assert [raw_of(i) for i in s.users["train"].iloc[0]] == ["4", "3"]
    assert raw_of(s.users["valid"].iloc[0]) == "2" and raw_of(s.users["test"].iloc[0]) == "1"


def test_sequence_split_errors(ds):
    with pytest.raises(LlmrecError, match="min_interactions"):
        sequence_split(ds, min_interactions=2)
    with pytest.raises(LlmrecError, match="no user has 1000"):
        sequence_split(ds, min_interactions=1000)


def test_cached_splits(monkeypatch, llmrec_home, tmp_path, ds):
    path = tmp_path / "inter.csv"
    inter = ds.interactions
    inter.to_csv(path, index=False)
    opts = {"path": str(path), "rating": "rating", "timestamp": "timestamp"}
    a = get_click_split("csv", dataset_options=opts, cuts=(0.6, 0.8))
    dirs = sorted((llmrec_home / "splits").iterdir())
    assert len(dirs) == 1 and (dirs[0] / "split.json").exists()
    import llmrec.data.splits as splits

    def boom(*a, **k):
        raise AssertionError("should come from the cache")
    with monkeypatch.context() as m:
        m.setattr(splits, "click_split", boom)
        b = get_click_split("csv", dataset_options=opts, cuts=(0.6, 0.8))
    assert _key(a.test) == _key(b.test)
    assert all(np.array_equal(x, y) for x, y in zip(a.test["history"], b.test["history"]))
    get_click_split("csv", dataset_options=opts, cuts=(0.5, 0.8))
    assert len(list((llmrec_home / "splits").iterdir())) == 2
    seq = get_sequence_split("csv", dataset_options=opts, max_length=3)
    assert isinstance(seq, SequenceSplit)
    assert isinstance(get_sequence_split("csv", dataset_options=opts, max_length=3), SequenceSplit)
    with pytest.raises(LlmrecError, match="unknown option"):
        get_click_split("csv", dataset_options=opts, cut=(0.5, 0.8))
