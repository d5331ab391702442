"""Tiny runs served by the tests of this folder, trained once per session: MF and a tiny-backbone TALLRec (click),
popularity-rank (sequence), popularity-holdout (holdout) on a CSV with raw ids (users "u_1", items "tt0000003")."""
from __future__ import annotations

import pytest
import torch

from server_helpers import raw_item
from synthetic import train_raw_id_runs

TINY_LLM = ["llm.backbone=tiny", "stage1.max_samples=16", "stage1.batch_size=8", "stage1.eval_rows=0",
            "eval.test_rows=16", "eval.batch_size=8"]
CUTS = ["data.cuts=[0.7, 0.85]"]
RUNS = {"mf": CUTS + ["collab.epochs=2"], "tallrec": CUTS + TINY_LLM, "popularity-rank": [],
        "popularity-holdout": ["holdout.min_count=1"]}  # every family


@pytest.fixture(scope="session")
def served_runs(tmp_path_factory):
    torch.set_num_threads(1)
    return train_raw_id_runs(tmp_path_factory.mktemp("served"), RUNS, lambda u: f"u_{u}", raw_item)


@pytest.fixture(scope="session")
def recs(served_runs):
    from llmrec.recommender import Recommender

    return {m: Recommender.from_pretrained(served_runs / m) for m in RUNS}
