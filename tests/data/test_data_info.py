"""describe / describe_split against direct computation, and the table format."""
from __future__ import annotations

import numpy as np
import pandas as pd

from llmrec.data.build import make_dataset
from llmrec.data.info import describe, describe_split, format_info
from llmrec.data.splits import click_split, sequence_split


def test_describe_counts():
    raw = pd.DataFrame({"user": [1, 1, 2, 3], "item": [1, 2, 2, 3], "rating": [5, 3, 4, 1],
                        "timestamp": [978307200, 978393600, 1009843199, 1009843200]})
    items = pd.DataFrame({"item": [1, 2, 3], "title": ["A (1990)", "", "C"], "text": ["x", "", ""]})
    info = describe(make_dataset("t", raw, items, "t"), threshold=4)
    assert (info["users"], info["items"], info["interactions"]) == (3, 3, 4)
    assert info["positive_rate"] == 0.5
    assert info["items_with_title"] == round(2 / 3, 4) and info["items_with_text"] == round(1 / 3, 4)
    assert info["time_first"] == "2001-01-01" and info["time_last"] == "2002-01-01"
    assert info["density"] == round(4 / 9, 6)
    assert info["rating_mean"] == 3.25 and info["per_user_median"] == 1.0


def test_describe_split(ds):
    s = click_split(ds, cuts=(0.6, 0.8))
    info = describe_split(s)
    for p in ("train", "valid", "valid_small", "test"):
        f = s.part(p)
        got = info["parts"][p]
        assert got["rows"] == len(f) and got["users"] == f["user_id"].nunique()
        assert got["positive_rate"] == round(float(f["label"].mean()), 4)
        assert got["history_mean"] == round(float(np.mean([len(h) for h in f["history"]])), 2)
        assert got["warm"] == round(float(f["warm"].mean()), 4)
    seq = describe_split(sequence_split(ds, max_length=5))
    assert seq["kind"] == "sequence" and seq["train_length_max"] <= 5


def test_format_info_is_aligned(ds):
    text = format_info(describe(ds))
    lines = text.splitlines()
    assert lines[0].split() == ["name", "synthetic"]
    assert len({line.index(line.split()[1]) for line in lines}) == 1  # values start in one column
    table = format_info(describe_split(click_split(ds, cuts=(0.6, 0.8)))).split("\n\n")[1].splitlines()
    assert table[0].split() == ["train", "valid", "valid_small", "test"]
    assert len({len(line) for line in table}) == 1  # right-aligned columns: equal widths
    assert "600" in format_info({"rows": 600}) and format_info({"n": 12345}) == "n  12,345"
