"""bench.reader: an LLM click run against the collaborative model it reads, on its saved test scores."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `bench` is a top-level folder of the repository

from bench import reader  # noqa: E402
from llmrec import experiment  # noqa: E402

TINY = ["llm.backbone=tiny", "binllm.tuning=intuitive", "stage1.max_samples=32", "stage1.batch_size=8",
        "stage1.eval_rows=0", "stage2.max_samples=16", "stage2.eval_rows=0", "encoder.epochs=3", "collab.epochs=2",
        "eval.test_rows=40", "eval.batch_size=8"]


def test_reader_compares_binllm_and_collm_runs_with_their_models(tiny_split, tmp_path):
    for method in ("binllm", "collm"):
        experiment.train(experiment.make_config(method, None, TINY), tmp_path / method, split=tiny_split)
    text = reader.main([str(tmp_path / "binllm"), str(tmp_path / "collm"), "--out", str(tmp_path / "r.md")])
    rows = [line.split(" | ") for line in text.splitlines()[2:]]
    assert [r[0].strip("| ") for r in rows] == ["binllm", "collm"]
    for r in rows:
        assert r[1] == "40" and 0 <= float(r[2]) <= 1 and 0 <= float(r[3]) <= 1
        assert -1 <= float(r[5]) <= 1  # Spearman
    assert (tmp_path / "r.md").read_text() == text


def test_reader_refuses_a_run_without_a_collaborative_model(tiny_split, tmp_path):
    experiment.train(experiment.make_config("icl", None, ["llm.backbone=tiny", "eval.test_rows=40"]),
                     tmp_path / "icl", split=tiny_split)
    with pytest.raises(SystemExit, match="a icl run; this compares BinLLM and CoLLM runs"):
        reader.main([str(tmp_path / "icl")])
