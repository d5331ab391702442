"""Tiny runs served by the tests of this folder, trained once per session: MF, a tiny-backbone TALLRec (click) and
popularity-holdout (holdout) on a CSV with raw ids (users "u_1", items "tt0000003")."""
from __future__ import annotations

import os

import pytest
import torch

from llmrec.cli import main
from server_helpers import raw_item
from synthetic import synthetic_dataset

TINY_LLM = ["llm.backbone=tiny", "stage1.max_samples=16", "stage1.batch_size=8", "stage1.eval_rows=0",
            "eval.test_rows=16", "eval.batch_size=8"]
CUTS = ["data.cuts=[0.7, 0.85]"]
RUNS = {"mf": CUTS + ["collab.epochs=2"], "tallrec": CUTS + TINY_LLM, "popularity-holdout": ["holdout.min_count=1"]}


@pytest.fixture(scope="session")
def served_runs(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("served")
    ds = synthetic_dataset()
    inter = ds.interactions.copy()
    inter["title"] = inter["item_id"].map(ds.titles())
    inter["user_id"] = inter["user_id"].map(lambda u: f"u_{u}")
    inter["item_id"] = inter["item_id"].map(raw_item)
    path = tmp / "ratings.csv"
    inter.to_csv(path, index=False)
    data = ["data.dataset=csv", f"data.path={path}", "data.options={rating: rating, timestamp: timestamp, "
            "title: title}"]
    old = os.environ.get("LLMREC_HOME")
    os.environ["LLMREC_HOME"] = str(tmp / "home")
    try:
        for method, extra in RUNS.items():
            assert main(["train", method, "--out", str(tmp / method), *data, *extra]) == 0
    finally:
        if old is not None:
            os.environ["LLMREC_HOME"] = old
    return tmp


@pytest.fixture(scope="session")
def recs(served_runs):
    from llmrec.recommender import Recommender

    return {m: Recommender.from_pretrained(served_runs / m) for m in RUNS}
