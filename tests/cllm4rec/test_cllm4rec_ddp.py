"""CLLM4Rec under `accelerate launch --num_processes 2` on CPU: the same validation rows, metrics and test metrics
as one process with the same global batch (the click trainer's equivalent is in tests/train)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from launch import launch_cpu, results

HERE = Path(__file__).resolve().parent


@pytest.mark.timeout(150)
def test_two_processes_match_one_process(tmp_path, llmrec_home):
    sys.path.insert(0, str(HERE))
    from ddp_cllm4rec_script import run

    proc = launch_cpu(HERE / "ddp_cllm4rec_script.py", tmp_path / "ddp", tmp_path / "result", 4, timeout=140)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = results(tmp_path / "result")
    single = run(str(tmp_path / "single"), 8)  # one process, the same global batch of 8 users

    assert [r["num_processes"] for r in ranks] == [2, 2] and single["num_processes"] == 1
    assert ranks[0]["history"] == ranks[1]["history"] and ranks[0]["test"] == ranks[1]["test"]
    assert len(single["history"]) == len(ranks[0]["history"]) >= 3
    # every validation (sharded top-k lists gathered back in order) and the test ranking agree with one process
    for h2, h1 in zip(ranks[0]["history"], single["history"], strict=True):
        assert h2["step"] == h1["step"] and h2["users"] == h1["users"] == 11
        for key in ("recall@20", "recall@40", "ndcg@100"):
            assert h2[key] == pytest.approx(h1[key], abs=1e-9)
        if h1["step"] == 0:  # the untrained state, evaluated first for the learning curve
            assert h1["train_loss"] is h2["train_loss"] is None
        else:
            assert h2["train_loss"] == pytest.approx(h1["train_loss"], rel=1e-5)
    assert ranks[0]["test"] == pytest.approx(single["test"], abs=1e-9)
    assert (tmp_path / "ddp" / "metrics.json").exists()
