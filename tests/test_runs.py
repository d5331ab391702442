"""A run directory under `Run`: budget fields may change on resume (a finished run continues), log.txt records
the start, resumes, evaluations and the end, and only the main process writes."""
from __future__ import annotations

import json

import pytest

from llmrec.cli import main
from llmrec.config import ExperimentConfig, StageConfig
from llmrec.errors import LlmrecError
from llmrec.methods.lcrec.config import LCRecConfig
from llmrec.methods.multvae.config import MultVAEConfig
from llmrec.runs import BUDGET_FIELDS, Run

from synthetic import CSV_OPTIONS


def mf(out, *extra):
    return ["train", "mf", "--out", str(out), "data.dataset=csv", f"data.path={extra[0]}", CSV_OPTIONS,
            "collab.patience=50", *extra[1:]]


def test_finished_run_given_more_epochs_continues_and_equals_a_straight_run(csv_data, tmp_path, capsys):
    grown, straight = tmp_path / "grown", tmp_path / "straight"
    assert main(mf(grown, csv_data, "collab.epochs=2")) == 0
    assert main(mf(grown, csv_data, "collab.epochs=4")) == 0
    assert main(mf(straight, csv_data, "collab.epochs=4")) == 0
    got, want = (json.loads((d / "metrics.json").read_text()) for d in (grown, straight))
    assert got["epochs"] == want["epochs"] == 4
    assert got["test"] == want["test"] and got["best_epoch"] == want["best_epoch"]
    log = (grown / "log.txt").read_text().splitlines()
    assert "start mf on" in log[0]
    assert any("budget changed (collab.epochs 2 -> 4)" in line for line in log)
    resumed = [line for line in log if "resumed from" in line]
    assert len(resumed) == 1 and "model_ckpt/last epoch 2" in resumed[0]
    evals = [line for line in log if " eval collab at " in line]
    assert [int(line.split(" at ")[1].split(":")[0]) for line in evals] == [1, 2, 3, 4]  # one line per epoch
    ends = [line for line in log if " end: test auc " in line]
    assert len(ends) == 2
    # the same config again: finished, nothing retrained
    assert main(mf(grown, csv_data, "collab.epochs=4")) == 0
    assert "already finished" in (grown / "log.txt").read_text().splitlines()[-1]


def test_other_fields_are_refused_and_budget_fields_are_named_in_one_place(tmp_path):
    run = Run.create_or_resume(tmp_path / "r", ExperimentConfig(method="lcrec"))
    run.save_json("state.json", {})
    budget = ExperimentConfig(method="lcrec", lcrec=LCRecConfig(max_steps=200, test_users=50))
    assert Run.create_or_resume(tmp_path / "r", budget).config.lcrec == LCRecConfig(max_steps=200, test_users=50)
    for field in ("lcrec.lr", "lcrec.valid_users", "lcrec.rqvae", "seed"):
        assert field not in BUDGET_FIELDS
    with pytest.raises(LlmrecError, match="different config.*lcrec.lr"):
        Run.create_or_resume(tmp_path / "r", ExperimentConfig(
            method="lcrec", lcrec=LCRecConfig(max_steps=200, test_users=50, lr=0.1)))
    with pytest.raises(LlmrecError, match="different config.*seed"):
        Run.create_or_resume(tmp_path / "r", ExperimentConfig(method="lcrec", seed=1, lcrec=budget.lcrec))


def test_stage1_budget_is_fixed_once_stage2_trained(tmp_path):
    run = Run.create_or_resume(tmp_path / "r", ExperimentConfig(method="binllm"))
    run.file("stage2_train").mkdir()
    with pytest.raises(LlmrecError, match="stage 2 already trained"):
        Run.create_or_resume(tmp_path / "r", ExperimentConfig(method="binllm", stage1=StageConfig(epochs=3)))


def test_only_the_main_process_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    run = Run.create_or_resume(tmp_path / "r", ExperimentConfig(method="mf"))
    run.save_json("a.json", {"x": 1})
    run.write_dir("adapter", lambda tmp: (tmp / "f").write_text("x"))
    run.log("hello")
    run.finish({"test": {}})
    assert not (tmp_path / "r").exists()
    monkeypatch.setenv("RANK", "0")
    Run.create_or_resume(tmp_path / "r", ExperimentConfig(method="mf")).log("hello")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["config.yaml", "log.txt"]


def test_a_budget_that_changes_the_model_is_refused_with_the_reason(tmp_path):
    run = Run.create_or_resume(tmp_path / "r", ExperimentConfig(method="multvae"))
    run.save_json("checkpoint.json", {})
    with pytest.raises(LlmrecError, match="multvae.epochs cannot change on resume: Mult-VAE plans its KL annealing"):
        Run.create_or_resume(tmp_path / "r", ExperimentConfig(method="multvae", multvae=MultVAEConfig(epochs=400)))

