"""What the holdout family's baselines (multvae, lightgcn-bpr, popularity-holdout) share: the run files they
write and the recommender over a model that scores every item for a user.

All are scored by the same full-ranking protocol as CLLM4Rec (`llmrec.data.holdout.evaluate_scores`: every item
scored, the user's train items excluded, Recall@20, Recall@40, NDCG@100 over every user with held-out items, the
test metrics with their 95% bootstrap intervals over users). The run directory gets `model.safetensors` (the
selected weights), `model.json` (what rebuilds the model) and `history.json` (one row per epoch with the samples
and training seconds so far: a learning curve); `checkpoint.safetensors` is written while training, so a killed
run resumes where it was.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from llmrec.data.holdout import HoldoutSplit, evaluate_scores, exclusion_mask
from llmrec.metrics import METRIC_KS
from llmrec.errors import LlmrecError
from llmrec.ids import RunIds
from llmrec.serving import Serving


def save_result(run, method: str, config, result, **extra) -> dict:
    """Write the selected model, what rebuilds it and its history; the run's metrics (`test`, `valid`, `curve`)."""
    run.save_tensors("model.safetensors", result.model.state_dict())
    run.save_json("model.json", {"method": method, "config": dataclasses.asdict(config) if config else {}})
    run.save_json("history.json", result.history)
    run.log(f"{method}: best epoch {result.best_epoch}, valid {result.best_valid}, test {result.test}")
    return {"valid": result.best_valid, "test": result.test, "best_epoch": result.best_epoch,
            "epochs": len(result.history), "train_seconds": round(result.seconds, 1),
            "curve": learning_curve(result.history), "threads": torch.get_num_threads(), **extra}


def saved_config(run, cls):
    """The model config saved in `model.json`; fields a newer llmrec dropped (a model seed) are ignored."""
    from llmrec.config import from_dict

    names = {f.name for f in dataclasses.fields(cls)}
    saved = run.load_json("model.json")["config"]
    return from_dict(cls, {k: v for k, v in saved.items() if k in names}, f"{run.path}/model.json")


def load_weights(run, model: torch.nn.Module, method: str) -> torch.nn.Module:
    try:
        model.load_state_dict(run.load_tensors("model.safetensors"))
    except RuntimeError as exc:
        raise LlmrecError(f"{run.path}/model.safetensors: does not match {method} "
                          f"({str(exc).splitlines()[0]})") from None
    return model


def learning_curve(history: list[dict]) -> list[dict]:
    """One row per validated epoch: samples and training seconds so far, valid Recall@20, Recall@40, NDCG@100
    (the same columns as CLLM4Rec's metrics["curve"])."""
    keys = [f"{kind}@{k}" for kind, k in METRIC_KS]
    return [{"epoch": h["epoch"], "samples": h["samples"], "train_seconds": h["train_seconds"],
             **{k: h[f"valid_{k}"] for k in keys}} for h in history if f"valid_{keys[0]}" in h]


def top_unseen(scores: torch.Tensor, seen: np.ndarray, k: int, candidates, titles: dict) -> list[tuple[int, str, float]]:
    """The k best (item, title, score) of one user's scores over every item, the `seen` items left out (and,
    when given, everything outside `candidates`); never padded with excluded items."""
    exclude = exclusion_mask([seen], len(scores))[0]
    if candidates is not None:
        allowed = torch.zeros_like(exclude)
        allowed[torch.as_tensor(candidates)] = True
        exclude |= ~allowed
    left = int((~exclude).sum())
    if not left:
        raise LlmrecError("recommend: no candidate item left once the known items are excluded")
    top = scores.float().masked_fill(exclude, float("-inf")).topk(min(k, left))
    return [(int(i), titles.get(int(i), ""), float(v)) for v, i in zip(top.values, top.indices)]


class HoldoutRecommender(Serving):
    """Full-catalogue top-k and evaluation on the run's split for a model that scores every item for a user.
    A method's subclass supplies `_user_scores` (and `_recommend_for_items` when it can fold in a new user)."""

    method = "holdout"

    def __init__(self, model: torch.nn.Module, split: HoldoutSplit):
        self.model, self.split = model.eval(), split
        self.item_titles = split.titles()
        self.train_items = split.user_items("train")
        self._train_matrix = split.matrix("train")
        self.ids = RunIds.of_split(split, range(1, split.n_users))
        self.item_popularity = np.bincount(split.train["item_id"].to_numpy(np.int64), minlength=split.n_items)

    def score_users(self, users) -> torch.Tensor:
        """[len(users), n_items] scores of every item (train items not yet excluded)."""
        with torch.no_grad():
            return self._user_scores(np.asarray(users, dtype=np.int64))

    def _user_scores(self, users: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def _top(self, scores: torch.Tensor, seen: np.ndarray, k: int, candidates) -> list[tuple[int, str, float]]:
        return top_unseen(scores, seen, k, candidates, self.item_titles)

    def _recommend(self, user: int, k: int, candidates) -> list[tuple[int, str, float]]:
        """Top-k (item id, title, score) for a user of the split; their train items are excluded."""
        return self._top(self.score_users([user])[0], self.train_items[user], k, candidates)

    def _score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The model's ranking score of each (user, item) pair (train items are not excluded here)."""
        out = np.zeros(len(users))
        uniq, row = np.unique(users, return_inverse=True)
        scores = self.score_users(uniq).float().cpu().numpy()
        out[:] = scores[row, items]
        return out

    def _recommend_for_items(self, items: np.ndarray, k: int, candidates) -> list[tuple[int, str, float]]:
        raise LlmrecError(f"{self.method} runs cannot recommend for a new user's items (no user outside the "
                          "training graph has an embedding); use --user, or a cllm4rec / multvae run")

    def evaluate(self, part: str = "test") -> dict:
        """Full-ranking Recall@20, Recall@40, NDCG@100 on `part` (train items excluded), with their intervals."""
        return evaluate_scores(self.split, part, self.score_users, intervals=True)
