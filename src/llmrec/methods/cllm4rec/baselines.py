"""The ranking baselines CLLM4Rec is compared with on a holdout split: LightGCN trained with BPR, and popularity.

LightGCN (He et al., 2020) for top-k ranking: the propagation is `llmrec.collab.lightgcn.LightGCN` (graph of the
split's train pairs, symmetric normalisation, layer mean); training is the paper's BPR: for every train pair
(u, i) of an epoch, in a shuffled order, one item j the user has not interacted with in train is drawn uniformly,
loss = -log sigmoid(s_ui - s_uj) + reg x (|e_u|^2 + |e_i|^2 + |e_j|^2) / 2 / batch on the layer-0 embeddings
(the official code's weight decay). Paper settings: d 64, 3 layers, Adam lr 1e-3, reg 1e-4, batch 2048, normal
initialisation (std 0.1, the official PyTorch code). Every `eval_every` epochs the validation Recall@20 + Recall@40
+ NDCG@100 decides which weights are kept; training stops after `patience` evaluations without gain.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from llmrec.collab.lightgcn import LightGCN, LightGCNConfig
from llmrec.collab.loop import run_epochs
from llmrec.data.holdout import HoldoutSplit, evaluate_scores, popularity_scores
from llmrec.errors import LlmrecError
from llmrec.methods.lightgcn_bpr.config import BPRConfig
from llmrec.metrics import SELECTION
from llmrec.tracking import Tracker


@dataclass
class BaselineResult:
    name: str
    best_epoch: int
    best_valid: dict
    test: dict
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    model: torch.nn.Module | None = None


def sample_negatives(users: np.ndarray, train_items: list[np.ndarray], n_items: int,
                     rng: np.random.Generator) -> np.ndarray:
    """One item per user drawn uniformly from 1..n_items-1 outside that user's train items (rejection sampling)."""
    seen = [set(x.tolist()) for x in train_items]
    neg = rng.integers(1, n_items, len(users))
    for k in range(len(users)):
        s = seen[users[k]]
        if len(s) >= n_items - 1:
            raise LlmrecError(f"user {users[k]} has interacted with every item: no negative to sample")
        while neg[k] in s:
            neg[k] = rng.integers(1, n_items)
    return neg


def train_lightgcn_bpr(split: HoldoutSplit, config: BPRConfig | None = None,
                       checkpoint: str | Path | None = None, tracker: Tracker | None = None,
                       seed: int = 2023) -> BaselineResult:
    """LightGCN trained with BPR on the split's train pairs; best validation weights scored on the test part.

    The epochs are `llmrec.collab.loop`'s: `checkpoint`, a file written after every epoch; when it exists, training
    resumes from it with the same subsequent batches and negatives. `tracker` (llmrec.tracking) gets train_loss,
    lr, samples_per_s every epoch and valid_<metric> at validations."""
    config = config or BPRConfig()
    torch.manual_seed(seed)  # the experiment's seed: initialisation, order, negative sampling
    model = LightGCN(split.n_users, split.n_items, LightGCNConfig(dim=config.dim, layers=config.layers,
                                                                    init_std=config.init_std))
    pairs_u = split.train["user_id"].to_numpy(np.int64)
    pairs_i = split.train["item_id"].to_numpy(np.int64)
    model.set_graph(pairs_u, pairs_i)
    train_items = split.user_items("train")
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    rng = np.random.default_rng(seed)
    final = {}

    def score(users):
        if "users" not in final:
            with torch.no_grad():
                final["users"], final["items"] = model.propagate()
        return final["users"][torch.as_tensor(users)] @ final["items"].T

    def train_epoch(epoch: int) -> dict:
        order = rng.permutation(len(pairs_u))
        neg_all = sample_negatives(pairs_u[order], train_items, split.n_items, rng)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            rows = order[start:start + config.batch_size]
            u = torch.as_tensor(pairs_u[rows])
            i = torch.as_tensor(pairs_i[rows])
            j = torch.as_tensor(neg_all[start:start + config.batch_size])
            users, items = model.propagate()
            x = (users[u] * (items[i] - items[j])).sum(-1)
            reg = (model.user_emb(u).pow(2).sum() + model.item_emb(i).pow(2).sum()
                   + model.item_emb(j).pow(2).sum()) / 2 / len(rows)
            loss = -F.logsigmoid(x).mean() + config.reg * reg
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        return {"loss": total / len(order)}

    def validate() -> dict:
        final.clear()  # propagate once with this epoch's weights
        return evaluate_scores(split, "valid", score, config.eval_batch_size)

    # epochs and patience are budget (llmrec.runs.BUDGET_FIELDS): a finished run may continue under more
    fingerprint = {k: v for k, v in asdict(config).items()
                   if k not in ("epochs", "patience", "progress", "eval_batch_size")}
    loop = run_epochs(model, optimizer, train_epoch, validate, epochs=config.epochs, metric=SELECTION,
                      eval_every=config.eval_every, patience=config.patience, samples_per_epoch=len(pairs_u),
                      checkpoint=checkpoint, fingerprint={**fingerprint, "pairs": len(pairs_u), "seed": seed},
                      extra_state=lambda: {"rng": rng.bit_generator.state},
                      load_extra_state=lambda extra: setattr(rng.bit_generator, "state", extra["rng"]),
                      tracker=tracker, progress=config.progress, desc="lightgcn-bpr")
    final.clear()
    test = evaluate_scores(split, "test", score, config.eval_batch_size, intervals=True)
    return BaselineResult(name="lightgcn-bpr", best_epoch=loop.best_epoch, best_valid=loop.best_metrics, test=test,
                          history=loop.history, seconds=loop.seconds, model=model)


class Popularity(torch.nn.Module):
    """Scores every item by its train interaction count, ties broken toward the lower item id (so the ranking
    does not depend on how topk orders equal scores); the counts are a buffer, saved and reloaded like a model."""

    def __init__(self, counts: torch.Tensor):
        super().__init__()
        self.register_buffer("counts", torch.as_tensor(counts, dtype=torch.float32))

    def scores(self, n_users: int) -> torch.Tensor:
        n = len(self.counts)
        tie_break = torch.arange(n, dtype=torch.float64, device=self.counts.device) / n  # < 1: counts keep order
        return (self.counts.double() - tie_break).float().repeat(n_users, 1)


def popularity_baseline(split: HoldoutSplit) -> BaselineResult:
    """Every user gets the unseen items in order of train popularity (train items excluded, as for every model
    on the split); the test metrics carry their bootstrap intervals."""
    model = Popularity(popularity_scores(split))
    score = lambda users: model.scores(len(users))  # noqa: E731
    return BaselineResult(name="popularity", best_epoch=0, best_valid=evaluate_scores(split, "valid", score),
                          test=evaluate_scores(split, "test", score, intervals=True), model=model)
