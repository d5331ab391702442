"""Name resolution, options, the processed cache, and the CoLLM pickles as a source."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from llmrec.data.registry import list_datasets, load_click_split, load_dataset
from llmrec.data.splits import click_split, get_click_split
from llmrec.data.types import ClickSplit
from llmrec.errors import LlmrecError


def test_list_and_unknown_name():
    names = list_datasets()
    assert {"ml-100k", "ml-1m", "ml-20m", "amazon", "csv", "recbole", "collm"} <= set(names)
    assert all(isinstance(v, str) and v for v in names.values())
    with pytest.raises(LlmrecError, match=r"unknown dataset 'ml-2m'; known: amazon, collm, csv, lcrec, ml-100k, ml-1m"):
        load_dataset("ml-2m")


def test_bad_options(tmp_path):
    with pytest.raises(LlmrecError, match=r"ml-1m: unknown option\(s\) sorce; accepted: none"):
        load_dataset("ml-1m", sorce="x")
    with pytest.raises(LlmrecError, match=r"amazon: missing option\(s\) reviews"):
        load_dataset("amazon")
    with pytest.raises(LlmrecError, match="accepted: path, user, item"):
        load_dataset("csv", path="x.csv", usr="u")


def write_csv(path, rows):
    pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]).to_csv(path, index=False)


def test_cache_layout_and_invalidation(tmp_path, llmrec_home):
    path = tmp_path / "r.csv"
    write_csv(path, [[1, 1, 5, 10], [2, 1, 3, 20]])
    ds = load_dataset("csv", path=str(path), rating="rating", timestamp="timestamp")
    dirs = list((llmrec_home / "processed").iterdir())
    assert len(dirs) == 1 and dirs[0].name.startswith("csv-v1-")
    assert sorted(p.name for p in dirs[0].iterdir()) == ["interactions.parquet", "items.parquet", "meta.json"]
    cached = load_dataset("csv", path=str(path), rating="rating", timestamp="timestamp")
    assert cached.interactions.equals(ds.interactions) and cached.raw_user_ids == ["1", "2"]
    write_csv(path, [[1, 1, 5, 10], [2, 1, 3, 20], [3, 2, 4, 30]])  # the file changed: a new build
    os.utime(path, ns=(1, 1))
    assert len(load_dataset("csv", path=str(path), rating="rating", timestamp="timestamp").interactions) == 3
    assert len(list((llmrec_home / "processed").iterdir())) == 2
    by_path = load_dataset(str(path), rating="rating", timestamp="timestamp")  # a file path as the name
    assert len(by_path.interactions) == 3 and by_path.name == "csv"


def test_failed_build_leaves_no_cache(tmp_path, llmrec_home):
    path = tmp_path / "r.csv"
    path.write_text("user_id,item_id\n")
    with pytest.raises(LlmrecError, match="no interactions"):
        load_dataset("csv", path=str(path))
    assert not (llmrec_home / "processed").exists() or list((llmrec_home / "processed").iterdir()) == []


def test_corrupt_cache_is_rebuilt(tmp_path, llmrec_home):
    path = tmp_path / "r.csv"
    write_csv(path, [[1, 1, 5, 10]])
    load_dataset("csv", path=str(path))
    (cache,) = (llmrec_home / "processed").iterdir()
    (cache / "interactions.parquet").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable cache"):
        ds = load_dataset("csv", path=str(path))
    assert len(ds.interactions) == 1
    assert len(load_dataset("csv", path=str(path)).interactions) == 1  # rewritten


def make_collm_dir(directory, make_ds):
    """Pickles in CoLLM's layout, their `his` built the way CoLLM's files are (earlier rows, row order)."""
    ds = make_ds(n_users=12, n_items=15, n_rows=200, seed=5, t0=978_307_200, span=86_400 * 360)  # year 2001
    ds.interactions["rating"] = (ds.interactions["rating"] >= 4).astype(np.float32)
    inter = ds.interactions.assign(row=np.arange(len(ds.interactions)))
    inter = inter.sort_values(["user_id", "timestamp", "row"], kind="stable").reset_index(drop=True)
    his = []
    for u, g in inter.groupby("user_id", sort=False):
        pos = []
        for it, lab in zip(g["item_id"], g["rating"]):
            his.append(np.array([0, *pos], dtype=np.int64))
            if lab:
                pos.append(it)
    month = pd.to_datetime(inter["timestamp"], unit="s").dt.month
    part = np.where(month <= 8, "train", np.where(month <= 10, "valid", "test"))
    frame = pd.DataFrame({"uid": inter["user_id"], "iid": inter["item_id"], "label": inter["rating"].astype(int),
                          "timestamp": inter["timestamp"], "his": his,
                          "title": [f"Item {i}" for i in inter["item_id"]]})
    directory.mkdir()
    for p in ("train", "valid", "test"):
        frame[part == p].to_pickle(directory / f"{p}_ood2.pkl")
    frame[part == "valid"].sample(frac=0.5, random_state=2023).to_pickle(directory / "valid_small_ood2.pkl")
    return directory


def test_collm_source_round_trip(tmp_path, make_ds):
    folder = make_collm_dir(tmp_path / "collm", make_ds)
    ref = get_click_split("collm", path=str(folder))
    assert isinstance(ref, ClickSplit)
    ds = load_dataset(str(folder))  # a folder resolves to the collm source
    assert ds.name == "collm"
    ours = click_split(ds, cuts=(("2001-01", "2001-08"), ("2001-09", "2001-10"), ("2001-11", "2001-12")),
                       threshold=1, history_ties="row_order")
    raw_item = np.array([int(x) for x in ds.raw_item_ids])
    for p in ("train", "valid", "valid_small", "test"):
        a, b = ours.part(p), ref.part(p)
        assert len(a) == len(b) > 0
        assert (raw_item[a["item_id"].to_numpy() - 1] == b["item_id"].to_numpy()).all()
        assert all(np.array_equal(raw_item[x - 1], y) for x, y in zip(a["history"], b["history"]))
    with pytest.raises(LlmrecError, match="unknown option"):
        get_click_split("collm", path=str(folder), cuts=(0.5, 0.6))
    again = load_click_split(str(folder), max_history=2)
    assert max(len(h) for h in again.test["history"]) == 2
    with pytest.raises(LlmrecError, match="not split already"):
        load_click_split("ml-1m")

