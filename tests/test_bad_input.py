"""Bad input gets one line `llmrec: error: ...` naming the input, exit code 2, and nothing written."""
from __future__ import annotations

import pytest

from llmrec.cli import main

from synthetic import CSV_OPTIONS


def data_args(path):
    return ["data.dataset=csv", f"data.path={path}", CSV_OPTIONS,
            "data.cuts=[0.7, 0.85]"]


def one_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("llmrec: error:"), err
    assert "Traceback" not in err and all(n in err for n in needles), err
    return err


# -- 1. values out of range, in every section, before a run directory exists --------------------------------------
@pytest.mark.parametrize("override, needle", [
    ("collab.epochs=-5", "must be > 0"),
    ("collab.batch_size=0", "must be >= 1"),
    ("collab.patience=0", "must be >= 1"),
    ("stage1.lr=0", "must be > 0"),
    ("stage2.eval_every=0", "must be >= 1"),
    ("stage1.max_samples=-1", "must be >= 1"),
    ("stage1.eval_rows=-1", "must be >= 0"),
    ("stage1.warmup_ratio=1.5", "must be in [0, 1)"),
    ("llm.lora.dropout=1", "must be in [0, 1)"),
    ("llm.lora.r=0", "must be >= 1"),
    ("eval.batch_size=0", "must be >= 1"),
    ("data.valid_small_fraction=0", "must be in (0, 1]"),
    ("collab.epochs=abc", "expected int"),
])
def test_config_value_out_of_range(override, needle, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "binllm", "--out", str(out), override]) == 2
    one_line(capsys, repr(override), override.split("=")[0], needle)
    assert not out.exists()


@pytest.mark.parametrize("method, override, needle", [
    ("sasrec-rank", "seqrank.epochs=0", "seqrank.epochs"),
    ("sasrec-rank", "seqrank.batch_size=0", "seqrank.batch_size"),
    ("lcrec", "lcrec.num_beams=0", "lcrec.num_beams"),
    ("lcrec", "lcrec.lr=-1", "lcrec.lr"),
    ("lcrec", "sequence.min_interactions=2", "min_interactions"),
    ("multvae", "multvae.dropout=1.0", "multvae.dropout"),
    ("multvae", "multvae.epochs=-1", "multvae.epochs"),
    ("lightgcn-bpr", "bpr.eval_every=0", "bpr.eval_every"),
    ("cllm4rec", "cllm4rec.finetune_lr=0", "cllm4rec.finetune_lr"),
    ("cllm4rec", "cllm4rec.nosuch=1", "nosuch"),
    ("multvae", "holdout.min_count=0", "min_count"),
    ("binllm", "encoder.epochs=0", "encoder.epochs"),
])
def test_method_sections_are_checked_before_the_run(method, override, needle, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", method, "--out", str(out), override]) == 2
    one_line(capsys, needle)
    assert not out.exists()


# -- 3. where a config problem is ---------------------------------------------------------------------------------
def test_malformed_yaml_names_file_line_and_column(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("collab:\n  epochs: [3\nllm: 1\n")
    assert main(["train", "mf", "--config", str(bad), "--out", str(tmp_path / "run")]) == 2
    one_line(capsys, f"{bad}:3:4:", "not valid YAML")


def test_unknown_key_in_yaml_names_file_and_key(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("collab:\n  epochs: 3\n  lrr: 1\n")
    assert main(["train", "mf", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 2
    one_line(capsys, str(cfg), "collab", "lrr")


def test_unknown_override_is_blamed_on_the_override_not_the_file(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("collab:\n  epochs: 3\n")
    assert main(["train", "mf", "--config", str(cfg), "--out", str(tmp_path / "run"), "stage1.lrr=1"]) == 2
    err = one_line(capsys, "override 'stage1.lrr=1'", "lrr")
    assert str(cfg) not in err


@pytest.mark.parametrize("override", ["=3", "stage1..lr=3", "stage1.lr=[1"])
def test_malformed_override(override, tmp_path, capsys):
    assert main(["train", "mf", "--out", str(tmp_path / "run"), override]) == 2
    one_line(capsys, repr(override))


# -- 2. a run that failed before it trained does not lock its --out --------------------------------------------
def test_bad_data_leaves_no_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "mf", "--out", str(out), "data.dataset=csv", f"data.path={tmp_path / 'none.csv'}"]) == 2
    one_line(capsys, "none.csv")
    assert not out.exists()


def test_run_without_training_state_takes_a_new_config(csv_data, tmp_path, capsys):
    out = tmp_path / "run"
    # what an earlier failure left: a config and a log, nothing trained
    from llmrec.experiment import make_config
    from llmrec.runs import Run
    Run.create_or_resume(out, make_config("mf", None, ["collab.epochs=7"])).log("failed: no data")
    assert main(["train", "mf", "--out", str(out), *data_args(csv_data), "collab.epochs=2"]) == 0
    assert (out / "metrics.json").exists()
    assert "config replaced" in (out / "log.txt").read_text()
    # a run with training state still refuses another config, and is left as it was
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    capsys.readouterr()
    assert main(["train", "mf", "--out", str(out), *data_args(csv_data), "collab.epochs=2",
                 "collab.batch_size=512"]) == 2
    one_line(capsys, "different config", "collab.batch_size")
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


# -- 4. resuming says so -----------------------------------------------------------------------------------------
def test_resumed_run_logs_and_prints_it_once(csv_data, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "mf", "--out", str(out), *data_args(csv_data), "collab.epochs=2"]
    assert main(argv) == 0
    assert "resumed from" not in capsys.readouterr().out
    (out / "metrics.json").unlink()  # as if killed before the end
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("resumed from") == 1
    assert (out / "log.txt").read_text().count("resumed from") == 1


# -- 6. evaluate parts -------------------------------------------------------------------------------------------
def test_evaluate_unknown_part_lists_the_family_parts(csv_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "mf", "--out", str(out), *data_args(csv_data), "collab.epochs=2"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--parts", "tset"]) == 2
    one_line(capsys, "--parts", "'tset'", "valid_small", "test")
    assert main(["evaluate", str(out), "--parts", ","]) == 2
    one_line(capsys, "--parts")


# -- 9. usage mistakes are one line too --------------------------------------------------------------------------
@pytest.mark.parametrize("argv, needle", [
    (["recommend", "run", "-k", "abc"], "-k"),
    (["recommend", "run", "--cold-start", "random"], "--cold-start"),
    (["nosuchcommand"], "nosuchcommand"),
    (["evaluate", "run", "--nosuch", "x"], "--nosuch"),
])
def test_usage_errors_are_one_line(argv, needle, capsys):
    assert main(argv) == 2
    one_line(capsys, needle)


def test_recommend_k_below_one_is_refused_before_loading(tmp_path, capsys):
    assert main(["recommend", str(tmp_path / "none"), "--user", "1", "-k", "0"]) == 2
    one_line(capsys, "-k", "got 0")


def test_collab_model_must_agree_with_the_method(tmp_path, capsys):
    from llmrec.experiment import make_config

    assert make_config("lightgcn").collab.model == "lightgcn"  # recorded from the method name
    assert main(["train", "mf", "--out", str(tmp_path / "run"), "collab.model=din"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "collab.model=din contradicts the method mf" in err
    assert not (tmp_path / "run").exists()
