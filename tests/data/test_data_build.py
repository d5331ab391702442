"""Id remapping, validation and k-core filtering."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmrec.data.build import encode_ids, kcore_filter, make_dataset
from llmrec.errors import LlmrecError


def test_ids_sorted_numerically_when_numeric():
    ids, raw = encode_ids(pd.Series(["10", "2", "2", "1", "10"]))
    assert raw == ["1", "2", "10"]
    assert ids.tolist() == [3, 2, 2, 1, 3]
    ids, raw = encode_ids(np.array([30, 4, 4]))
    assert raw == ["4", "30"] and ids.tolist() == [2, 1, 1]
    ids, raw = encode_ids(pd.Series([3.0, 1.0]))  # float ids that are integers read as '3', not '3.0'
    assert raw == ["1", "3"]


def test_ids_sorted_as_text_otherwise():
    ids, raw = encode_ids(pd.Series(["b", "a10", "a2", "b"]))
    assert raw == ["a10", "a2", "b"]
    assert ids.tolist() == [3, 1, 2, 3]
    ids, raw = encode_ids(pd.Series(["7", "007", "8"]))  # leading zeros are distinct tokens
    assert raw == ["007", "7", "8"] and ids.tolist() == [2, 1, 3]


def test_make_dataset_maps_items_and_keeps_row_order():
    raw = pd.DataFrame({"user": ["u2", "u1", "u2"], "item": [20, 10, 30], "rating": [5, 3, 4],
                        "timestamp": [3, 1, 2]})
    items = pd.DataFrame({"item": ["30", "10", "10", "99"], "title": ["C", "A", "A-dup", "unused"],
                          "text": ["c", None, "x", "u"]})
    ds = make_dataset("t", raw, items, "t")
    assert ds.n_users == 3 and ds.n_items == 4
    assert ds.raw_user_ids == ["u1", "u2"] and ds.raw_item_ids == ["10", "20", "30"]
    assert ds.interactions["user_id"].tolist() == [2, 1, 2]
    assert ds.interactions["item_id"].tolist() == [2, 1, 3]
    assert ds.interactions["timestamp"].tolist() == [3, 1, 2]
    assert ds.items["title"].tolist() == ["A", "", "C"]  # first row wins; item 20 has no entry
    assert ds.items["text"].tolist() == ["", "", "c"]
    assert ds.interactions.dtypes.to_dict() == {"user_id": np.int64, "item_id": np.int64, "rating": np.float32,
                                                "timestamp": np.int64}


def test_implicit_and_untimed_rows():
    ds = make_dataset("t", pd.DataFrame({"user": [1, 1, 2], "item": [1, 2, 1]}), None, "t")
    assert ds.interactions["rating"].tolist() == [1.0, 1.0, 1.0]
    assert ds.interactions["timestamp"].tolist() == [0, 1, 2]


def test_date_timestamps():
    raw = pd.DataFrame({"user": [1, 2], "item": [1, 1], "timestamp": ["2001-06-01", "2001-06-01T00:00:10Z"]})
    ds = make_dataset("t", raw, None, "t")
    assert ds.interactions["timestamp"].tolist() == [991353600, 991353610]


@pytest.mark.parametrize("frame, message", [
    (pd.DataFrame({"user": [1], "rating": [1]}), "missing column"),
    (pd.DataFrame({"user": [], "item": []}), "no interactions"),
    (pd.DataFrame({"user": [1, None], "item": [1, 2]}), "row 2: user id is empty"),
    (pd.DataFrame({"user": [1, 2], "item": [1, 2], "rating": ["5", "five"]}), "row 2: rating 'five'"),
    (pd.DataFrame({"user": [1, 2], "item": [1, 2], "timestamp": ["2001-01-01", "soon"]}), "row 2: timestamp 'soon'"),
])
def test_bad_frames(frame, message):
    with pytest.raises(LlmrecError, match=message):
        make_dataset("t", frame, None, "file.csv")


def brute_kcore(rows, k):
    rows = list(rows)
    while True:
        cu = {u: sum(1 for r in rows if r[0] == u) for u, _ in rows}
        ci = {i: sum(1 for r in rows if r[1] == i) for _, i in rows}
        keep = [r for r in rows if cu[r[0]] >= k and ci[r[1]] >= k]
        if len(keep) == len(rows):
            return keep
        rows = keep


def test_kcore_matches_brute_force():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"user": rng.integers(0, 30, 300), "item": rng.integers(0, 40, 300)})
    for k in (2, 5, 8):
        got = kcore_filter(frame, k)
        assert list(zip(got["user"], got["item"])) == brute_kcore(zip(frame["user"], frame["item"]), k)
        assert (got["user"].value_counts() >= k).all() and (got["item"].value_counts() >= k).all()
    once = kcore_filter(frame, 8, iterative=False)
    cu, ci = frame["user"].value_counts(), frame["item"].value_counts()
    expected = frame[(frame["user"].map(cu) >= 8) & (frame["item"].map(ci) >= 8)]
    assert once.index.tolist() == expected.index.tolist()
    assert kcore_filter(frame, 0) is frame
