"""The holdout family from the command line: train cllm4rec / multvae / lightgcn-bpr, recommend (--user, --items),
resume after a kill, benchmark; baseline metrics against a brute-force Recall / NDCG."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from llmrec.checkpoint import read_state
from llmrec.cli import main
from llmrec.data.holdout import HoldoutSplit
from llmrec.recommender import Recommender

from planted_data import planted_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `bench` is a top-level folder of the repository

TINY = ["llm.backbone=tiny", "cllm4rec.device=cpu", "cllm4rec.content_epochs=0.5",
        "cllm4rec.alternate_epochs=0.5", "cllm4rec.max_content_docs=40", "cllm4rec.pretrain_batch_size=8",
        "cllm4rec.finetune_epochs=2", "cllm4rec.finetune_batch_size=8", "cllm4rec.eval_every=2",
        "cllm4rec.patience=null", "cllm4rec.max_valid_users=10", "cllm4rec.init_std=0.1"]
BASELINES = ["multvae.hidden=32", "multvae.latent=8", "multvae.batch_size=16", "multvae.epochs=4",
             "multvae.progress=false", "bpr.dim=8", "bpr.layers=2", "bpr.epochs=4", "bpr.eval_every=2",
             "bpr.batch_size=128", "bpr.progress=false"]


@pytest.fixture
def data(tmp_path):
    ds = planted_dataset(n_users=30, n_items=40, per_user=12)
    inter = ds.interactions.copy()
    inter["title"] = inter["item_id"].map(ds.titles())
    path = tmp_path / "ratings.csv"
    inter.to_csv(path, index=False)
    return ["data.dataset=csv", f"data.path={path}",
            "data.options={rating: rating, timestamp: timestamp, title: title}", "holdout.min_count=1"]


def printed_items(out: str) -> list[int]:
    """Item ids of `llmrec recommend` lines: rank, score, item id, title."""
    return [int(line.split()[2]) for line in out.splitlines() if line.strip()]


def one_line_error(capsys, message: str) -> None:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("llmrec: error:") and message in err, err


def test_cli_train_recommend_new_user_and_bad_input(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "cllm4rec", "--out", str(run), *data, *TINY]) == 0
    out = capsys.readouterr().out
    assert "| cllm4rec |" in out and "Recall@20" in out and (run / "metrics.json").exists()
    split = HoldoutSplit.load(run / "split")
    train = split.user_items("train")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["users"] == len(split.eval_users("test"))

    rec = Recommender.from_pretrained(run)
    assert rec.evaluate("test") == pytest.approx(metrics["test"])  # the saved run ranks as training did
    for user in (1, 7):
        assert main(["recommend", str(run), "--user", str(user), "-k", "6"]) == 0
        items = printed_items(capsys.readouterr().out)
        assert items == [i for i, _, _ in rec.recommend(user, k=6, internal_ids=True)]
        assert len(items) == 6 == len(set(items)) and all(1 <= i < split.n_items for i in items)
        assert not set(items) & set(train[user].tolist())

    # a new user: known items through the fine-tuning prompt, no retraining
    assert main(["recommend", str(run), "--items", "3,5,8", "-k", "4"]) == 0
    items = printed_items(capsys.readouterr().out)
    assert len(items) == 4 == len(set(items)) and not {3, 5, 8} & set(items)
    assert items == [i for i, _, _ in rec.recommend_for_items([3, 5, 8], k=4, internal_ids=True)]
    # the items matter: another history gives another list
    other = [i for i, _, _ in rec.recommend_for_items(train[2].tolist(), k=10, internal_ids=True)]
    assert other != [i for i, _, _ in rec.recommend_for_items(train[1].tolist(), k=10, internal_ids=True)]

    for argv, message in ((["--user", "1", "--items", "3"], "exactly one of"), ([], "exactly one of"),
                          (["--items", "3,x"], "item x is not in the run's data"),
                          (["--items", str(split.n_items)], f"item {split.n_items} is not in the run's data"),
                          (["--user", str(split.n_users + 3)], f"user {split.n_users + 3} is not in the run's data"),
                          (["--user", "1", "--candidates", "0"], "candidates: item 0 is not in the run's data")):
        assert main(["recommend", str(run), *argv]) == 2
        one_line_error(capsys, message)


def test_residual_encoder_run_reloads_and_pairs_with_its_control(data, tmp_path, capsys):
    """A residual run saves its gate and ranks as in training; bench.paired_holdout reads it against the no-LLM
    control user by user, and its means are the two runs' own test metrics."""
    from safetensors.torch import load_file

    from bench import paired_holdout

    run, control = tmp_path / "residual", tmp_path / "control"
    assert main(["train", "cllm4rec", "--out", str(run), *data, *TINY, "cllm4rec.lora=true",
                 "cllm4rec.encoder=residual"]) == 0
    assert main(["train", "cllm4rec-no-llm", "--out", str(control), *data, *TINY]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert load_file(str(run / "model.safetensors"))["gate"].item() != 0.0  # trained away from the control
    assert Recommender.from_pretrained(run).evaluate("test") == pytest.approx(metrics["test"])

    rows = paired_holdout.compare(str(run), str(control))
    control_test = json.loads((control / "metrics.json").read_text())["test"]
    assert [r["metric"] for r in rows] == ["recall@20", "recall@40", "ndcg@100"]
    for r in rows:
        assert r["users"] == metrics["test"]["users"]
        assert (r["A"], r["B"]) == pytest.approx((metrics["test"][r["metric"]], control_test[r["metric"]]))
        diff, interval = r["A - B"].split(" ", 1)
        assert float(diff) == pytest.approx(r["A"] - r["B"], abs=1e-4)
        lo, hi = (float(x) for x in interval.strip("[]").split(", "))
        assert lo <= float(diff) <= hi
    same = paired_holdout.compare(str(control), str(control))
    assert all(r["A - B"] == "+0.0000 [+0.0000, +0.0000]" for r in same)


@pytest.mark.parametrize("stage", ["pretrain-alternate", "finetune"])
def test_killed_run_resumes_to_the_uninterrupted_result(stage, data, tmp_path, capsys, monkeypatch):
    from llmrec.methods.cllm4rec import recipe, tasks

    whole = tmp_path / "whole"
    assert main(["train", "cllm4rec", "--out", str(whole), *data, *TINY]) == 0
    expected = json.loads((whole / "metrics.json").read_text())

    run = tmp_path / "killed"
    # Ctrl-C inside a stage, after its checkpoint at step 2: fine-tuning checkpoints at each validation (every 2
    # steps here); pre-training every PRETRAIN_CHECKPOINT_EVERY steps. The content stage takes 2 steps first.
    cls, die_at = (tasks.RecommendTask, 4) if stage == "finetune" else (tasks.PretrainTask, 2 + 3)
    monkeypatch.setattr(recipe, "PRETRAIN_CHECKPOINT_EVERY", 2)
    real_loss, calls = cls.loss, []

    def dying_loss(self, batch):
        calls.append(1)
        if len(calls) == die_at:
            raise KeyboardInterrupt
        return real_loss(self, batch)

    monkeypatch.setattr(cls, "loss", dying_loss)
    assert main(["train", "cllm4rec", "--out", str(run), *data, *TINY]) == 130
    assert "resume" in capsys.readouterr().err
    state = run / stage / "checkpoint" / "state.safetensors"
    assert not (run / "metrics.json").exists() and read_state(state)["step"] == 2
    resumed = []
    monkeypatch.setattr(cls, "loss", lambda self, batch: resumed.append(1) or real_loss(self, batch))
    assert main(["train", "cllm4rec", "--out", str(run), *data, *TINY]) == 0
    got = json.loads((run / "metrics.json").read_text())
    # only the steps after the checkpoint ran again (finished stages were reloaded, not retrained)
    assert len(resumed) == expected["stages"][stage]["steps"] - 2 > 0
    assert got["test"] == pytest.approx(expected["test"], rel=1e-9)
    assert got["valid"] == pytest.approx(expected["valid"], rel=1e-9)
    assert got["stages"]["finetune"]["history"][-1]["train_loss"] == pytest.approx(
        expected["stages"]["finetune"]["history"][-1]["train_loss"], rel=1e-6)
    # the same config again: the finished run is kept, a different one is refused
    assert main(["train", "cllm4rec", "--out", str(run), *data, *TINY]) == 0
    capsys.readouterr()
    assert main(["train", "cllm4rec", "--out", str(run), *data, *TINY, "cllm4rec.lambda_reg=0.5"]) == 2
    one_line_error(capsys, "different config")


def brute_force(scores: np.ndarray, train: list[np.ndarray], held: list[np.ndarray], users) -> dict:
    """Recall@20/40 and NDCG@100 written out: rank all items but padding and train items, count hits."""
    out = {"recall@20": [], "recall@40": [], "ndcg@100": []}
    for row, u in zip(scores, users):
        order = [int(i) for i in np.argsort(-row, kind="stable") if i != 0 and i not in set(train[u].tolist())]
        truth = set(held[u].tolist())
        for k in (20, 40):
            out[f"recall@{k}"].append(len(truth & set(order[:k])) / min(k, len(truth)))
        dcg = sum(1 / math.log2(r + 2) for r, i in enumerate(order[:100]) if i in truth)
        idcg = sum(1 / math.log2(r + 2) for r in range(min(100, len(truth))))
        out["ndcg@100"].append(dcg / idcg)
    return {k: float(np.mean(v)) for k, v in out.items()}


@pytest.mark.parametrize("method", ["multvae", "lightgcn-bpr", "popularity-holdout"])
def test_baselines_match_brute_force_metrics_and_recommend(method, data, tmp_path, capsys):
    run = tmp_path / method
    assert main(["train", method, "--out", str(run), *data, *BASELINES]) == 0
    assert f"| {method} |" in capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    rec = Recommender.from_pretrained(run)
    split = rec.split
    users = split.eval_users("test")
    scores = rec.score_users(users).numpy()
    ref = brute_force(scores, split.user_items("train"), split.user_items("test"), users)
    for key in ("recall@20", "recall@40", "ndcg@100"):
        assert metrics["test"][key] == pytest.approx(ref[key], abs=1e-9)
        assert metrics["test"][f"{key}_lo"] <= metrics["test"][key] <= metrics["test"][f"{key}_hi"]
    assert metrics["test"]["users"] == len(users)
    if method == "popularity-holdout":  # train counts, the same for every user
        counts = np.bincount(split.train["item_id"], minlength=split.n_items)
        order = np.lexsort((np.arange(split.n_items), -counts))  # by count, ties toward the lower id
        assert all(np.array_equal(np.argsort(-row, kind="stable"), order) for row in scores)
        assert metrics["curve"] == []
    else:  # the learning curve: samples and training seconds grow with the epochs
        curve = metrics["curve"]
        assert len(curve) >= 2 and all(k in curve[0] for k in ("samples", "train_seconds", "recall@20"))
        assert all(b["samples"] > a["samples"] and b["train_seconds"] >= a["train_seconds"]
                   for a, b in zip(curve, curve[1:]))

    assert main(["recommend", str(run), "--user", "2", "-k", "5"]) == 0
    items = printed_items(capsys.readouterr().out)
    assert len(items) == 5 == len(set(items)) and not set(items) & set(split.user_items("train")[2].tolist())
    assert main(["recommend", str(run), "--items", "3,5"]) == (2 if method == "lightgcn-bpr" else 0)
    if method != "lightgcn-bpr":  # Mult-VAE folds a new user's items into its encoder; popularity needs nothing
        assert not {3, 5} & set(printed_items(capsys.readouterr().out))
    else:
        one_line_error(capsys, "cannot recommend for a new user")


def test_items_option_is_refused_for_runs_without_it(data, tmp_path, capsys):
    run = tmp_path / "mf"
    assert main(["train", "mf", "--out", str(run), *data, "data.cuts=[0.7, 0.85]", "collab.epochs=2"]) == 0
    capsys.readouterr()
    assert main(["recommend", str(run), "--items", "1,2"]) == 2
    one_line_error(capsys, "a mf run cannot recommend from a new user's items")
    assert main(["recommend", str(run), "--user", "1", "-k", "2"]) == 0  # --user still works


def test_benchmark_with_the_controls_writes_intervals_curves_table_and_figure(data, tmp_path, capsys):
    out = tmp_path / "bench"
    methods = ("multvae", "lightgcn-bpr", "popularity-holdout", "cllm4rec", "cllm4rec-no-llm")
    assert main(["benchmark", "--methods", ",".join(methods), "--out", str(out), *data, *TINY, *BASELINES]) == 0
    table = (out / "table.md").read_text()
    results = json.loads((out / "results.json").read_text())
    for method in methods:
        assert f"| {method} |" in table
        test = results[method]["test"]
        # every cell shows the value and its 95% interval over users
        assert f"{test['recall@20']:.4f} ({test['recall@20_lo']:.4f}-{test['recall@20_hi']:.4f})" in table
    assert "Recall@20" in table and "Recall@40" in table and "NDCG@100" in table and "_lo" not in table
    assert (out / "ranking_metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    users = {m: r["test"]["users"] for m, r in results.items()}
    assert len(set(users.values())) == 1 and users["cllm4rec"] > 0  # one protocol, the same users
    # the control: the same fine-tuning without the LLM and without pre-training
    assert set(results["cllm4rec"]["stages"]) == {"pretrain-content", "pretrain-alternate", "finetune"}
    assert set(results["cllm4rec-no-llm"]["stages"]) == {"finetune"}
    for method in ("cllm4rec", "cllm4rec-no-llm"):
        curve = results[method]["curve"]
        assert curve[0]["step"] == 0 and curve[0]["samples"] == 0  # the untrained fine-tuning state first
        assert [c["step"] for c in curve] == sorted({c["step"] for c in curve})
        assert all(b["train_seconds"] >= a["train_seconds"] for a, b in zip(curve, curve[1:]))
        assert curve[-1]["samples"] == results[method]["stages"]["finetune"]["history"][-1]["samples"]
    assert results["cllm4rec"]["curve"][0]["pretrain_documents"] > 0 == results["cllm4rec-no-llm"]["curve"][0][
        "pretrain_documents"]
