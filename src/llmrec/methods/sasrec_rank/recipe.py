"""`sasrec-rank`: SASRec trained for next-item ranking (`collab.ranking.train_ranking`) on the leave-one-out split,
the collaborative baseline LC-Rec is compared with.

Config: the `seqrank` section (`methods/sasrec_rank/config.py`) with the experiment's `seed`; `seqrank.model` holds
SASRec hyper-parameters over the ranking defaults `RANKING_SASREC` (e.g. `seqrank.model={dim: 64, blocks: 2}`).

Test metrics (full ranking over every item), each with its 95% bootstrap interval over users:
- `test`: the users LC-Rec scores with the same config (`lcrec.test_users`, seeded by the experiment's `seed`;
  all users when lcrec.test_users is None, the default), so one benchmark compares the two
  on the same users;
- `test_all`: every user with a test item.
Seen items follow the sequence family's one rule, `lcrec.exclude_seen` (default: the input history is excluded
from the ranking), here as in LC-Rec and popularity-rank.
Run files: `model.safetensors` (best weights), `model.json` (its description), `checkpoint/` (resume).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from llmrec.collab.ranking import RankingConfig, eval_sequences, rank_targets, train_ranking
from llmrec.metrics import leave_one_out_metrics as ranking_metrics
from llmrec.data.samples import pad_histories
from llmrec.data.types import SequenceSplit
from llmrec.errors import LlmrecError
from llmrec.methods.sequence import SequenceUsers, lcrec_eval_rows
from llmrec.serving import Serving
from llmrec.tracking import Tracker, scoped


def exclude_seen(cfg) -> bool:
    """The sequence family's rule for seen items under this config: `lcrec.exclude_seen`."""
    return cfg.lcrec.exclude_seen


def ranking_config(cfg) -> tuple[RankingConfig, dict]:
    """(RankingConfig, SASRec overrides) of an ExperimentConfig: its `seqrank` section, the experiment's seed and
    the family's seen-item rule (`lcrec.exclude_seen`)."""
    section = dataclasses.asdict(cfg.seqrank)
    model = section.pop("model")
    return RankingConfig(**section, exclude_history=exclude_seen(cfg), seed=cfg.seed), model


def lcrec_test_rows(cfg, split: SequenceSplit) -> np.ndarray:
    """Rows of `split.users` in LC-Rec's test subset under this config (see the module docstring)."""
    return lcrec_eval_rows(len(split.users), cfg.lcrec.test_users, cfg.lcrec.valid_users, cfg.seed, "test")


def subset_metrics(model, split: SequenceSplit, rows: np.ndarray, part: str, rc: RankingConfig,
                   intervals: bool = True) -> dict:
    """Metrics of these users (those without a `part` target are not scored), with intervals by default."""
    hist, targets = eval_sequences(split, part, rows)
    return ranking_metrics(rank_targets(model, hist, targets, rc.exclude_history, rc.eval_batch_size), intervals)


def save_model(run, result, name: str = "model", **extra) -> None:
    """A trained SASRec (`RankingResult`) into the run: `<name>.safetensors` (its best weights) and `<name>.json`
    (its description, plus `extra`)."""
    run.save_tensors(f"{name}.safetensors", result.state_dict)
    run.save_json(f"{name}.json", {"description": result.description, **extra})


def load_model(run, name: str = "model"):
    """The SASRec `save_model` wrote, in eval mode."""
    from llmrec import collab

    model = collab.from_description(run.load_json(f"{name}.json")["description"])
    model.load_state_dict(run.load_tensors(f"{name}.safetensors"))
    return model.eval()


def train(cfg, split: SequenceSplit, run, tracker: Tracker | None = None) -> dict:
    """Train SASRec for ranking in the run (resumable); `tracker` (llmrec.tracking) follows it under seqrank/."""
    rc, model_overrides = ranking_config(cfg)
    ckpt = run.file("checkpoint")
    ckpt.mkdir(parents=True, exist_ok=True)
    result = train_ranking(split, rc, model_overrides, checkpoint_dir=ckpt, tracker=scoped(tracker, "seqrank"))
    save_model(run, result)
    rows = lcrec_test_rows(cfg, split)
    test = subset_metrics(result.model, split, rows, "test", rc)
    test_all = subset_metrics(result.model, split, np.arange(len(split.users)), "test", rc)
    return {"test": test, "test_all": test_all, "exclude_seen": rc.exclude_history,
            "test_users": f"LC-Rec's test users under this config: {int(test['users'])} of {len(split.users)}",
            "valid_ndcg@10": result.best_valid_ndcg10, "best_epoch": result.best_epoch,
            "epochs": len(result.history), "stopped_early": result.stopped_early,
            "train_seconds": round(result.seconds, 1), "history": result.history}


def load_recommender(run, split: SequenceSplit) -> "SeqRankRecommender":
    return SeqRankRecommender(run, split)


class SeqRankRecommender(Serving):
    """Top-k of a trained sasrec-rank run: the hidden state after the user's known past scores every item."""

    def __init__(self, run, split: SequenceSplit):
        self.run, self.split, self.cfg = run, split, run.config
        self.rc, _ = ranking_config(self.cfg)
        self.model = load_model(run)
        self.users = SequenceUsers(split)
        self.ids, self.item_popularity, self.item_titles = self.users.ids, self.users.counts, self.users.titles
        self.method = "sasrec-rank"

    @torch.no_grad()
    def _scores(self, history: np.ndarray) -> np.ndarray:
        seq = pad_histories([history[-self.model.config.max_len:]], self.model.config.max_len)
        seq = seq.to(self.model.item_emb.weight.device)
        s = (self.model.encode(seq, last_only=True)[:, -1] @ self.model.item_emb.weight.T)[0]
        return s.float().cpu().numpy().astype(np.float64)

    def _recommend(self, user: int, k: int, candidates) -> list[tuple[int, str, float]]:
        """Top-k (item id, title, score) after the user's past; every unseen item, or the given candidates."""
        past = self.users.history(user)
        cand = self.users.unseen(past) if candidates is None else candidates
        return self.users.top(cand, self._scores(past)[cand], k)

    def _score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The ranking score of each item after its user's past (one forward pass per user)."""
        out = np.zeros(len(users))
        for u in np.unique(users):
            at = users == u
            out[at] = self._scores(self.users.history(int(u)))[items[at]]
        return out

    def evaluate(self, part: str = "test") -> dict:
        """Full-ranking metrics: 'valid' (all users), 'test' (LC-Rec's test users, as in training) or
        'test_all' (all users)."""
        n = len(self.split.users)
        if part == "valid" or part == "test_all":
            rows = np.arange(n)
        elif part == "test":
            rows = lcrec_test_rows(self.cfg, self.split)
        else:
            raise LlmrecError(f"evaluate: part must be valid, test or test_all for sasrec-rank, got {part!r}")
        return subset_metrics(self.model, self.split, rows, "valid" if part == "valid" else "test", self.rc,
                              intervals=part != "valid")
