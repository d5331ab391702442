"""Synthetic data with a planted signal, shared by tests (a plain module: `conftest` names clash across folders)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from llmrec.data.synthetic import CSV_OPTIONS, synthetic_dataset, write_ratings_csv

__all__ = ["CSV_OPTIONS", "synthetic_dataset", "train_raw_id_runs", "write_ratings_csv"]


def train_raw_id_runs(tmp: Path, runs: dict[str, list[str]], raw_user: Callable[[int], str],
                      raw_item: Callable[[int], str], blank_title_item: int | None = None) -> Path:
    """Write the synthetic dataset as a CSV whose ids are the dataset's own (`raw_user(u)`, `raw_item(i)`), train
    one run per method (`runs`: method -> overrides) into `tmp/<method>` with its cache under `tmp/home`, and
    return `tmp`. `blank_title_item`: an item left without a title (shown by its raw id)."""
    from llmrec.cli import main

    ds = synthetic_dataset()
    inter = ds.interactions.copy()
    inter["title"] = inter["item_id"].map(ds.titles())
    if blank_title_item is not None:
        inter.loc[inter["item_id"] == blank_title_item, "title"] = ""
    inter["user_id"] = inter["user_id"].map(raw_user)
    inter["item_id"] = inter["item_id"].map(raw_item)
    path = tmp / "ratings.csv"
    inter.to_csv(path, index=False)
    data = ["data.dataset=csv", f"data.path={path}", CSV_OPTIONS]
    old = os.environ.get("LLMREC_HOME")
    os.environ["LLMREC_HOME"] = str(tmp / "home")
    try:
        for method, extra in runs.items():
            assert main(["train", method, "--out", str(tmp / method), *data, *extra]) == 0
    finally:  # module- and session-scoped fixtures cannot use monkeypatch
        if old is None:
            os.environ.pop("LLMREC_HOME", None)
        else:
            os.environ["LLMREC_HOME"] = old
    return tmp
