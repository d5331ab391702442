"""The `llmrec` command end to end on a CSV dataset: data, train, evaluate, recommend, score, and bad input."""
import pandas as pd
import pytest

from llmrec.cli import main

from synthetic import CSV_OPTIONS


def overrides(path):
    return ["data.dataset=csv", f"data.path={path}", CSV_OPTIONS,
            "data.cuts=[0.7, 0.85]", "collab.epochs=3"]


def test_data_list_and_info(csv_data, capsys):
    assert main(["data", "list"]) == 0
    assert "ml-100k" in capsys.readouterr().out
    assert main(["data", "info", "csv", "--path", str(csv_data)]) == 0
    assert "users" in capsys.readouterr().out


def test_train_evaluate_recommend_score(csv_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "mf", "--out", str(run), *overrides(csv_data)]) == 0
    out = capsys.readouterr().out
    assert "| mf |" in out and (run / "metrics.json").exists()
    assert main(["evaluate", str(run), "--parts", "valid,test"]) == 0
    assert "| test |" in capsys.readouterr().out
    assert main(["recommend", str(run), "--user", "1", "-k", "3"]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.strip()]
    assert len(lines) == 3 and "Film" in lines[0]
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"user_id": [1, 2], "item_id": [3, 4]}).to_csv(pairs, index=False)
    assert main(["score", str(run), str(pairs)]) == 0
    scored = capsys.readouterr().out.splitlines()
    assert scored[0] == "user_id,item_id,score" and len(scored) == 3


@pytest.mark.parametrize("argv, message", [
    (["train", "nosuchmethod"], "unknown method"),
    (["train", "mf", "llm.nosuchfield=1"], "unknown field"),
    (["evaluate", "/nonexistent/run"], "not a run directory"),
    (["data", "info", "ml-2m"], "unknown dataset"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and err.startswith("llmrec: error:")


def test_malformed_csv_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id\n1\n\"unterminated")
    assert main(["train", "mf", "--out", str(tmp_path / "r"), "data.dataset=csv", f"data.path={bad}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.csv" in err


TINY_LLM = ["llm.backbone=tiny", "stage1.max_samples=16", "stage1.batch_size=8", "stage1.eval_rows=0",
            "stage2.max_samples=16", "stage2.batch_size=8", "stage2.eval_rows=0", "encoder.epochs=2",
            "eval.test_rows=24", "eval.batch_size=8"]


def test_benchmark_writes_table_and_figures(csv_data, tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["benchmark", "--methods", "mf,binllm,binllm-binary", "--out", str(out), *overrides(csv_data), *TINY_LLM]
    assert main(argv) == 0
    table = (out / "table.md").read_text().splitlines()
    assert [row.split("|")[1].strip() for row in table[2:]] == ["mf", "binllm", "binllm-binary"]
    for png in ("warm_cold_auc.png", "binary_vs_dot_decimal.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import json
    results = json.loads((out / "results.json").read_text())
    tokens = {m: results[m]["test"]["prompt_tokens_per_sample"] for m in ("binllm", "binllm-binary")}
    assert tokens["binllm-binary"] > tokens["binllm"]  # 32 characters per code against 4 short numbers
    assert results["mf"]["test"]["rows"] == results["binllm"]["test"]["rows"] == 24  # same test rows for all
    capsys.readouterr()
    assert main(["benchmark", "--methods", "mf,lcrec", "--out", str(tmp_path / "mixed")]) == 2
    assert "mix method families" in capsys.readouterr().err


def test_demo_then_binary_variant_reuses_finished_runs(csv_data, tmp_path, capsys):
    out = tmp_path / "demo"
    data = ["data.dataset=csv", f"data.path={csv_data}", CSV_OPTIONS,
            "data.cuts=[0.7, 0.85]"]
    argv = ["demo", "--quick", "--out", str(out), *data, "llm.backbone=tiny", "eval.test_rows=24"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert all(f"| {m} |" in printed for m in ("mf", "tallrec", "binllm")) and "BinLLM top 5" in printed
    assert out.joinpath("binllm", "config.yaml").read_text().count(f"stage1_from: {out / 'tallrec'}") == 1
    stamps = {m: (out / m / "metrics.json").stat().st_mtime_ns for m in ("mf", "tallrec", "binllm")}
    assert main([*argv[:2], "--methods", "mf,tallrec,binllm,binllm-binary", *argv[2:]]) == 0
    assert {m: (out / m / "metrics.json").stat().st_mtime_ns for m in stamps} == stamps  # reused, not retrained
    assert (out / "binary_vs_dot_decimal.png").exists() and "| binllm-binary |" in capsys.readouterr().out


def test_python_dash_m_and_version_and_a_closed_pipe(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    import llmrec

    env = {**os.environ, "PYTHONPATH": str(Path(llmrec.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-m", "llmrec", "--version"], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.strip() == f"llmrec {llmrec.__version__}"
    # a reader that closes the pipe early gets no traceback
    piped = subprocess.run(f"'{sys.executable}' -m llmrec data list | head -1", shell=True, capture_output=True,
                           text=True, env=env)
    assert piped.stdout.count("\n") == 1 and "Traceback" not in piped.stderr
