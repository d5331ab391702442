"""LC-Rec and sasrec-rank through the `llmrec` command: train, resume, recommend, evaluate, benchmark (tiny models,
the synthetic dataset written as a CSV)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from llmrec.cli import main
from llmrec.errors import LlmrecError
from llmrec.recommender import Recommender

from synthetic import CSV_OPTIONS

LCREC_TINY = ["llm.backbone=tiny", "lcrec.text_encoder=backbone", "lcrec.max_steps=2", "lcrec.eval_every=2",
              "lcrec.batch_size=4", "lcrec.valid_users=4", "lcrec.test_users=6", "lcrec.num_beams=5",
              "lcrec.eval_batch_size=3",
              "lcrec.rqvae={levels: 3, codebook_size: 4, e_dim: 8, epochs: 10, batch_size: 32, eval_every: 5}"]
SEQRANK_TINY = ["seqrank.epochs=4", "seqrank.progress=false", "seqrank.model={dim: 16, blocks: 1}"]


@pytest.fixture
def data_args(csv_data):
    return ["data.dataset=csv", f"data.path={csv_data}", CSV_OPTIONS]


def _split(run_dir):
    from llmrec.data.types import SequenceSplit
    return SequenceSplit.load(run_dir / "split")


def test_train_lcrec_cli_then_recommend_evaluate_and_resume(data_args, tmp_path, capsys):
    run = tmp_path / "lcrec"
    assert main(["train", "lcrec", "--out", str(run), *data_args, *LCREC_TINY]) == 0
    assert "| lcrec |" in capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["method"] == "lcrec" and metrics["test"]["users"] == 6 and metrics["steps"] == 2
    assert {"hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10"} <= set(metrics["test"])
    assert metrics["index"]["collision_rate_final"] == 0.0

    split = _split(run)
    rec = Recommender.from_pretrained(run)
    # the rebuilt model is the trained one: it reproduces the run's test metrics exactly
    assert rec.evaluate("test") == pytest.approx(metrics["test"])
    users = split.users.reset_index(drop=True)
    for r in (0, 5):
        user = int(users.at[r, "user_id"])
        past = set(np.asarray(users.at[r, "train"]).tolist()) | {int(users.at[r, "valid"]), int(users.at[r, "test"])}
        # k plus the user's past exceeds the run's 5 beams: the search widens, still k unseen items
        out = rec.recommend(user, k=6, internal_ids=True)
        items = [i for i, _, _ in out]
        assert len(items) == 6 == len(set(items))
        assert all(1 <= i < split.n_items and i not in past for i in items)
        assert [s for _, _, s in out] == sorted((s for _, _, s in out), reverse=True)
        titles = dict(zip(split.items["item_id"], split.items["title"]))
        assert all(t == titles[i] and t for i, t, _ in out)
    # explicit candidates: ranked among themselves by the log-probability of their index
    cands = [3, 7, 11, 2]
    ranked = rec.recommend(int(users.at[0, "user_id"]), k=3, candidates=cands, internal_ids=True)
    assert len(ranked) == 3 and {i for i, _, _ in ranked} <= set(cands)
    assert all(math.isfinite(s) and s < 0 for _, _, s in ranked)
    with pytest.raises(LlmrecError, match=f"item {split.n_items} is not in the run's data"):
        rec.recommend(1, k=2, candidates=[1, split.n_items], internal_ids=True)
    with pytest.raises(LlmrecError, match="k must be"):
        rec.recommend(1, k=0, internal_ids=True)
    with pytest.raises(LlmrecError, match="user 10000 is not in the run's data"):
        rec.recommend(10_000, k=3, internal_ids=True)
    fallback = rec.recommend(10_000, k=3, internal_ids=True, cold_start="popularity")
    assert len({i for i, _, _ in fallback}) == 3
    # score: the log-probability recommend ranks candidates by
    user0 = int(users.at[0, "user_id"])
    assert rec.score([user0] * len(ranked), [i for i, _, _ in ranked], internal_ids=True) == \
        pytest.approx([s for _, _, s in ranked], abs=1e-5)

    assert main(["recommend", str(run), "--user", str(int(users.at[0, "user_id"])), "-k", "4"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 4 and "Film" in lines[0]

    # a second train call finds the finished run and returns its metrics without training again
    stamp = (run / "metrics.json").stat().st_mtime_ns
    assert main(["train", "lcrec", "--out", str(run), *data_args, *LCREC_TINY]) == 0
    assert (run / "metrics.json").stat().st_mtime_ns == stamp
    assert "already finished" in (run / "log.txt").read_text()


def test_benchmark_sasrec_rank_popularity_and_the_two_ablations(data_args, tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["benchmark", "--methods", "sasrec-rank,popularity-rank,lcrec-random-index,lcrec-no-sinkhorn",
                 "--out", str(out), *data_args, *LCREC_TINY, *SEQRANK_TINY]) == 0
    table = (out / "table.md").read_text()
    for name in ("sasrec-rank", "popularity-rank", "lcrec-random-index", "lcrec-no-sinkhorn"):
        assert f"| {name} |" in table
    assert "HR@10" in table and "NDCG@10" in table and "paper_hr@10" in table and "_lo" not in table
    png = (out / "ranking_metrics.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    results = json.loads((out / "results.json").read_text())
    assert results["lcrec-random-index"]["index"]["kind"] == "random"
    assert results["lcrec-no-sinkhorn"]["index"]["kind"] == "learned"
    no_sk = results["lcrec-no-sinkhorn"]["index"]
    # no Sinkhorn rounds ran: collisions left by argmin are all resolved by the deterministic rule
    assert no_sk["collision_rate_sinkhorn"] == no_sk["collision_rate_argmin"] and no_sk["collision_rate_final"] == 0
    # sasrec-rank and popularity are tested on the same seeded users as LC-Rec, and on everyone in test_all,
    # all three under one rule for seen items, each metric with its bootstrap interval
    for name in ("sasrec-rank", "popularity-rank", "lcrec-random-index"):
        test = results[name]["test"]
        assert test["users"] == 6 and results[name]["exclude_seen"] is True
        assert test["hr@10_lo"] <= test["hr@10"] <= test["hr@10_hi"]
    assert results["sasrec-rank"]["test_all"]["users"] == results["popularity-rank"]["test_all"]["users"] == 40
    assert results["lcrec-random-index"]["test"]["paper_users"] == 6


def _brute_force_ranks(model, histories, targets):
    """Rank of each target by scoring every item one user at a time, history items and padding excluded."""
    ranks = []
    with torch.no_grad():
        for h, t in zip(histories, targets):
            h = np.asarray(h)[-model.config.max_len:]
            seq = torch.zeros((1, model.config.max_len), dtype=torch.long)
            seq[0, -len(h):] = torch.as_tensor(h)
            scores = (model.encode(seq)[0, -1] @ model.item_emb.weight.T).numpy()
            allowed = [i for i in range(1, len(scores)) if i not in set(h.tolist())]
            ranks.append(1 + sum(scores[i] > scores[t] for i in allowed if i != t))
    return np.asarray(ranks, dtype=np.float64)


def _metrics(ranks):
    hr = {k: float(np.mean(ranks <= k)) for k in (1, 5, 10)}
    nd = {k: float(np.mean(np.where(ranks <= k, 1 / np.log2(ranks + 1), 0.0))) for k in (5, 10)}
    return {**{f"hr@{k}": v for k, v in hr.items()}, **{f"ndcg@{k}": v for k, v in nd.items()}}


def test_sasrec_rank_metrics_equal_a_brute_force_ranking(data_args, tmp_path):
    from llmrec import experiment
    from llmrec.methods.sequence import lcrec_eval_rows

    run = tmp_path / "sasrec"
    cfg = experiment.make_config("sasrec-rank", None, data_args + SEQRANK_TINY + ["lcrec.test_users=7"])
    metrics = experiment.train(cfg, run)
    rec = Recommender.from_pretrained(run)
    split = _split(run)
    users = split.users.reset_index(drop=True)
    hist = [np.append(np.asarray(t), v) for t, v in zip(users["train"], users["valid"])]
    ranks = _brute_force_ranks(rec.model, hist, users["test"].to_numpy())
    assert metrics["test_all"]["users"] == len(users)
    for k, v in _metrics(ranks).items():
        assert metrics["test_all"][k] == pytest.approx(v), k
    rows = lcrec_eval_rows(len(users), 7, None, cfg.seed, "test")
    assert metrics["test"]["users"] == 7
    for k, v in _metrics(ranks[rows]).items():
        assert metrics["test"][k] == pytest.approx(v), k
    assert rec.evaluate("test") == pytest.approx(metrics["test"])
    # recommend: the best-scored unseen items, in score order
    user = int(users.at[2, "user_id"])
    past = set(np.append(hist[2], users.at[2, "test"]).tolist())
    out = rec.recommend(user, k=5, internal_ids=True)
    assert len(out) == 5 and not ({i for i, _, _ in out} & past)
    with torch.no_grad():
        seq = torch.zeros((1, rec.model.config.max_len), dtype=torch.long)
        full = np.append(hist[2], users.at[2, "test"])
        seq[0, -len(full):] = torch.as_tensor(full)
        scores = (rec.model.encode(seq)[0, -1] @ rec.model.item_emb.weight.T).numpy()
    best = sorted((i for i in range(1, split.n_items) if i not in past), key=lambda i: -scores[i])[:5]
    assert [i for i, _, _ in out] == best
    with pytest.raises(LlmrecError, match="user 10000 is not in the run's data"):
        rec.recommend(10_000, k=2, internal_ids=True)
    assert rec.score([user] * 5, [i for i, _, _ in out], internal_ids=True) == \
        pytest.approx([s for _, _, s in out], abs=1e-5)  # score: the ranking score of recommend


def _popularity_ranks(split, rows, exclude):
    """Rank of each test item by train counts, ties pessimistic, the history (train + valid) left out or not."""
    users = split.users.reset_index(drop=True)
    counts = np.bincount(np.concatenate(list(users["train"])), minlength=split.n_items)
    ranks = []
    for r in rows:
        hist = set(np.asarray(users.at[r, "train"]).tolist()) | {int(users.at[r, "valid"])}
        t = int(users.at[r, "test"])
        rivals = [i for i in range(1, split.n_items) if i != t and not (exclude and i in hist)]
        ranks.append(split.n_items if exclude and t in hist else 1 + sum(counts[i] >= counts[t] for i in rivals))
    return np.asarray(ranks, dtype=np.float64)


def test_one_seen_rule_for_sasrec_and_popularity(data_args, tmp_path):
    from llmrec import experiment
    from llmrec.methods.sasrec_rank.recipe import ranking_config

    runs = {}
    for rule in ("true", "false"):
        cfg = experiment.make_config("popularity-rank", None, data_args + [f"lcrec.exclude_seen={rule}"])
        assert ranking_config(cfg)[0].exclude_history is (rule == "true")  # sasrec-rank follows the same field
        runs[rule] = experiment.train(cfg, tmp_path / rule)
    split = _split(tmp_path / "true")
    every = np.arange(len(split.users))
    for rule, m in runs.items():
        assert m["exclude_seen"] is (rule == "true") and m["test"]["users"] == len(split.users)  # every user
        assert m["test"] == pytest.approx(m["test_all"])
        for k, v in _metrics(_popularity_ranks(split, every, rule == "true")).items():
            assert m["test"][k] == pytest.approx(v), (rule, k)
    assert runs["true"]["test"]["hr@10"] >= runs["false"]["test"]["hr@10"]
    rec = Recommender.from_pretrained(tmp_path / "true")
    assert rec.evaluate("test") == pytest.approx(runs["true"]["test"])
    user = int(split.users["user_id"].iloc[0])
    past = set(rec.users.history(user).tolist())
    top = rec.recommend(user, k=5, internal_ids=True)
    assert len(top) == 5 and not {i for i, _, _ in top} & past
    with pytest.raises(LlmrecError, match="seqrank: unknown field.*exclude_history"):  # one field holds the rule
        experiment.make_config("sasrec-rank", None, ["seqrank.exclude_history=true", "lcrec.exclude_seen=false"])
