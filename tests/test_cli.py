"""The `llmrec` command end to end on a CSV dataset: data, train, evaluate, recommend, score, and bad input."""
import pandas as pd
import pytest

from llmrec.cli import main

from synthetic import synthetic_dataset


@pytest.fixture
def csv_data(tmp_path):
    ds = synthetic_dataset()
    inter = ds.interactions.copy()
    inter["title"] = inter["item_id"].map(ds.titles())
    path = tmp_path / "ratings.csv"
    inter.to_csv(path, index=False)
    return path


def overrides(path):
    return ["data.dataset=csv", f"data.path={path}", "data.options={rating: rating, timestamp: timestamp, "
            "title: title}", "data.cuts=[0.7, 0.85]", "collab.epochs=3"]


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
