"""CLLM4Rec's multinomial head, ranking, inference and recipe, on the tiny backbone and planted data."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from llmrec.data.holdout import holdout_split, popularity_scores, evaluate_scores
from llmrec.metrics import holdout_metrics
from llmrec.errors import LlmrecError
from llmrec.llm.backbones import load_backbone
from llmrec.llm.train import predict_rows
from llmrec.experiment import train as train_run
from llmrec.methods.cllm4rec import CLLM4Rec, CLLM4RecConfig
from llmrec.methods.cllm4rec.model import CLLM4RecModel
from llmrec.methods.cllm4rec.tasks import RankTask, RecommendTask
from llmrec.methods.cllm4rec.tokens import IdVocab

from planted_data import cllm4rec_experiment, planted_dataset


def build(split, seed=0):
    torch.manual_seed(seed)
    backbone, tok = load_backbone("tiny", device="cpu")
    model = CLLM4RecModel(backbone, split.n_users, split.n_items, init_std=0.1, seed=seed)
    return model, IdVocab(tok, model.vocab_size, split.n_users, split.n_items), tok.pad_token_id


def own_block_share(split, top, users, n_groups=2):
    block = (split.n_items - 1) // n_groups
    src = dict(zip(split.users["user_id"], split.users["source_user_id"]))
    src_item = dict(zip(split.items["item_id"], split.items["source_item_id"]))
    hits = [((src_item[int(i)] - 1) // block) == (src[u] - 1) % n_groups for u, row in zip(users, top) for i in row]
    return float(np.mean(hits))


def test_multinomial_head_learns_a_planted_pattern():
    split = holdout_split(planted_dataset(n_users=24, per_user=12), min_count=1)
    model, vocab, pad = build(split)
    model.set_trainable(True, False)
    train = split.user_items("train")
    users = np.arange(1, split.n_users)
    task = RecommendTask(model, vocab, users, train, 0.2, "heldout", None, 0.0, pad, seed=0, draws=30)
    assert task.n_rows == 30 * len(users)
    # rows are (user, draw): the same row always holds out the same items, another draw other ones
    b0, b1 = task.collate([0]), task.collate([len(users)])
    assert torch.equal(task.collate([0])["targets"], b0["targets"]) and torch.equal(task.collate([0])["ids"], b0["ids"])
    assert not torch.equal(b0["ids"], b1["ids"])
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    first = None
    for step in range(30):  # every user once per step, a fresh draw each time
        loss = task.loss(task.collate(list(range(step * len(users), (step + 1) * len(users)))))
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first
    valid_users = split.eval_users("valid")
    rank = RankTask(model, vocab, valid_users, train, 9, None, pad, seed=0)
    top = rank.topk(predict_rows(rank, rank.n_rows, 9 * 8))
    assert own_block_share(split, top, valid_users) > 0.9
    pop = popularity_scores(split)
    pop_top = evaluate_scores(split, "valid", lambda u: pop.repeat(len(u), 1))
    full = RankTask(model, vocab, valid_users, train, split.n_items - 1, None, pad, seed=0)
    ours = holdout_metrics(full.topk(predict_rows(full, full.n_rows, full.k * 8)),
                           [split.user_items("valid")[u] for u in valid_users])
    assert ours["ndcg@100"] > pop_top["ndcg@100"] + 0.1


def test_ranking_excludes_seen_items_and_skips_users_without_heldout():
    split = holdout_split(planted_dataset(n_users=20), min_count=1)
    drop = split.test["user_id"].isin([1, 2, 3, 4, 5])
    split.test = split.test[~drop].reset_index(drop=True)  # these users now have no test items
    model, vocab, pad = build(split)
    train = split.user_items("train")
    users = split.eval_users("test")
    assert not set(users) & {1, 2, 3, 4, 5}
    rank = RankTask(model, vocab, users, train, 20, None, pad, seed=0)
    scores = predict_rows(rank, rank.n_rows, 20 * 4)
    top = rank.topk(scores)
    for u, row in zip(users, top):
        assert not set(row.tolist()) & set(train[u].tolist()) and 0 not in row
        assert len(set(row.tolist())) == len(row)
    held = split.user_items("test")
    m = holdout_metrics(top, [held[u] for u in users])
    assert all(np.isfinite(v) for v in m.values()) and m["users"] == len(users)
    # users without held-out items give no NaN, they are skipped
    m2 = holdout_metrics(np.vstack([top, top[:1]]), [held[u] for u in users] + [np.zeros(0)])
    assert m2["users"] == len(users) and m2["recall@20"] == pytest.approx(m["recall@20"])


def test_train_resume_and_inference(tmp_path):
    split = holdout_split(planted_dataset(n_users=24, per_user=10), min_count=1)
    fields = dict(device="cpu", content_epochs=0.5, alternate_epochs=0.5, max_content_docs=40, pretrain_batch_size=8,
                  finetune_epochs=1, finetune_batch_size=8, eval_every=2, patience=None, max_valid_users=10,
                  eval_users_per_batch=8, init_std=0.1)
    cfg = CLLM4RecConfig(**fields)
    out = tmp_path / "run"
    metrics = train_run(cllm4rec_experiment(**fields), out, split=split)
    for part in ("valid", "test"):
        assert all(np.isfinite(metrics[part][k]) for k in ("recall@20", "recall@40", "ndcg@100"))
    assert metrics["valid_users"] == 10
    assert set(metrics["stages"]) == {"pretrain-content", "pretrain-alternate", "finetune"}
    saved = json.loads((out / "metrics.json").read_text())
    assert train_run(cllm4rec_experiment(**fields), out, split=split)["test"] == saved["test"]  # read back
    with pytest.raises(LlmrecError, match="different config"):
        train_run(cllm4rec_experiment(**fields, lambda_reg=0.5), out, split=split)
    # one run: the stages' folders and the model in it, no run of its own inside
    assert {"config.yaml", "split", "finetune", "model.safetensors", "metrics.json"} <= {p.name for p in out.iterdir()}
    assert not (out / "cllm4rec").exists() and not (out / "config.json").exists()

    rec = CLLM4Rec.load(out, split=split)
    train = split.user_items("train")
    titles = split.titles()
    listed = rec.recommend(3, k=5, internal_ids=True)
    top = [i for i, _, _ in listed]
    assert len(top) == 5 and not set(top) & set(train[3].tolist()) and 0 not in top
    assert [t for _, t, _ in listed] == [titles[i] for i in top]
    assert [s for _, _, s in listed] == sorted((s for _, _, s in listed), reverse=True)
    assert rec.score([3] * 5, top, internal_ids=True) == pytest.approx([s for _, _, s in listed], abs=1e-5)
    # the loaded model ranks exactly as the evaluation did
    rank = RankTask(rec.model, rec.vocab, np.array([3]), train, 5, cfg.max_prompt_items,
                    rec.pad_id, 2023)
    assert rank.topk(predict_rows(rank, rank.n_rows, 5))[0].tolist() == top
    # and its evaluation of the test part reproduces the training run's test metrics
    assert rec.evaluate("test") == pytest.approx(saved["test"])
    # candidates restrict the ranking (known items excluded), keeping the full ranking's order
    pool = top[::-1][:3] + train[3].tolist()[:2]
    assert [i for i, _, _ in rec.recommend(3, k=10, candidates=pool, internal_ids=True)] == top[2:5]
    new = [i for i, _, _ in rec.recommend_for_items([1, 2, 3], k=4, internal_ids=True)]
    assert len(new) == 4 == len(set(new)) and not {0, 1, 2, 3} & set(new)
    zero = rec.recommend_for_items([1, 2, 3], k=4, new_user="zero", internal_ids=True)
    assert len(zero) == 4
    with pytest.raises(LlmrecError, match=f"item {split.n_items} is not in the run's data"):
        rec.recommend_for_items([split.n_items], internal_ids=True)
    with pytest.raises(LlmrecError, match=f"user {split.n_users} is not in the run's data"):
        rec.recommend(split.n_users, internal_ids=True)
