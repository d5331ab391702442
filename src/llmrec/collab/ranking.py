"""SASRec trained for next-item ranking on leave-one-out sequences (`SequenceSplit`), evaluated by full ranking.

Training (Kang & McAuley): every user's train sequence is read causally, and at each position the model predicts
the next item: `train[:-1]` -> `train[1:]`, the last `max_len` steps. Loss 'ce' (default) is the cross-entropy of a
softmax over the whole catalogue; 'bce' is the original paper's loss, one positive against `negatives` sampled items
the user never had, binary cross-entropy.

Evaluation: the hidden state after the user's history scores every item; the padding id, and (by default) every
item already in the history, are excluded; the target's 1-based rank gives HR@1/5/10, NDCG@5/10 and MRR. Valid
reads `train` and predicts `valid`; test reads `train + [valid]` and predicts `test`. Early stopping on valid
NDCG@10, the best weights kept, checkpoints and resume: `llmrec.collab.loop`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from llmrec.collab import build_model
from llmrec.collab.loop import run_epochs
from llmrec.collab.sasrec import SASRec
from llmrec.data.samples import pad_histories
from llmrec.data.types import SequenceSplit
from llmrec.errors import LlmrecError
from llmrec.methods.sasrec_rank.config import SeqRankConfig
from llmrec.metrics import leave_one_out_metrics, rank_of_target
from llmrec.tracking import Tracker

CHECKPOINT_FILE = "last.safetensors"
RANKING_SASREC = {"max_len": 50, "lr": 1e-3, "weight_decay": 0.0, "xavier_init": True}
"""SASRec settings for ranking that differ from its click defaults (original code: maxlen 50, lr 1e-3, no L2,
xavier-normal initialisation)."""


@dataclass
class RankingConfig(SeqRankConfig):
    """`SeqRankConfig` and what the experiment decides for every sequence method: the seen-item rule and the
    seed."""

    exclude_history: bool = True
    """Exclude items already in the input history from the ranking (standard full ranking of unseen items; a target
    that repeats a history item then ranks last)."""
    seed: int = 2023
    """Seeds initialisation (in `train_ranking`), the order, negatives and dropout."""


@dataclass
class RankingResult:
    model: SASRec
    """The model with its best weights loaded, in eval mode."""
    state_dict: dict[str, torch.Tensor]
    best_epoch: int
    best_valid_ndcg10: float
    history: list[dict] = field(default_factory=list)
    """Per validation: epoch, loss, and valid hr@k / ndcg@k / mrr."""
    stopped_early: bool = False
    test: dict[str, float] = field(default_factory=dict)
    """Test hr@1, hr@5, hr@10, ndcg@5, ndcg@10, mrr, users."""
    seconds: float = 0.0
    description: dict = field(default_factory=dict)


def eval_sequences(split: SequenceSplit, part: str, rows=None) -> tuple[list[np.ndarray], np.ndarray]:
    """(input histories, targets) of the users that have a `part` target: valid reads train, test train + valid.
    rows: positions in `split.users` to take (default all), in that order."""
    if part not in ("valid", "test"):
        raise ValueError(f"part must be 'valid' or 'test', not {part!r}")
    users = split.users.reset_index(drop=True)
    if rows is not None:
        users = users.iloc[np.asarray(rows, dtype=np.int64)]
    targets = users[part].to_numpy()
    histories = []
    for row in users.itertuples(index=False):
        h = np.asarray(row.train, dtype=np.int64)
        histories.append(np.append(h, row.valid) if part == "test" else h)
    keep = np.flatnonzero(np.asarray(targets, dtype=np.float64) > 0)  # users without this target are skipped
    return [histories[i] for i in keep], np.asarray(targets[keep], dtype=np.int64)


def _exclude(scores: torch.Tensor, histories, exclude_history: bool) -> torch.Tensor:
    scores[:, 0] = -math.inf
    if exclude_history:
        rows = np.concatenate([np.full(len(h), r) for r, h in enumerate(histories)]) if histories else []
        cols = np.concatenate(histories) if histories else []
        if len(cols):
            scores[torch.as_tensor(rows), torch.as_tensor(cols)] = -math.inf
    return scores


@torch.no_grad()
def next_item_scores(model: SASRec, histories, exclude_history: bool = True) -> torch.Tensor:
    """[len(histories), n_items] float32 on the CPU: every item's score after each history (its last max_len
    items, the last one in the last slot), the padding id and, with exclude_history, the history's items at -inf.
    The model's train/eval mode is the caller's."""
    seq = pad_histories(histories, model.config.max_len).to(model.item_emb.weight.device)
    scores = model.encode(seq, last_only=True)[:, -1] @ model.item_emb.weight.T
    return _exclude(scores.float().cpu(), histories, exclude_history)


@torch.no_grad()
def rank_targets(model: SASRec, histories: list[np.ndarray], targets: np.ndarray, exclude_history: bool = True,
                 batch_size: int = 256) -> np.ndarray:
    """1-based rank of each target among all items, scored by the model after reading each history."""
    was = model.training
    model.eval()
    ranks = []
    for start in range(0, len(targets), batch_size):
        scores = next_item_scores(model, histories[start:start + batch_size], exclude_history)
        ranks.append(rank_of_target(scores.numpy(), targets[start:start + batch_size]))
    model.train(was)
    return np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)


def popularity(split: SequenceSplit) -> np.ndarray:
    """[n_items] how often each item occurs in the train sequences."""
    return np.bincount(np.concatenate([np.asarray(t, dtype=np.int64) for t in split.users["train"]]),
                       minlength=split.n_items)[: split.n_items]


def popularity_ranks(split: SequenceSplit, part: str, exclude_history: bool = True, rows=None) -> np.ndarray:
    """Ranks given by train popularity (the baseline a sequential model must beat); ties rank pessimistically.
    rows: as in `eval_sequences`."""
    histories, targets = eval_sequences(split, part, rows)
    counts = popularity(split)
    scores = torch.as_tensor(counts, dtype=torch.float64).repeat(len(targets), 1)
    scores = _exclude(scores, histories, exclude_history)
    return rank_of_target(scores.numpy(), targets)


def training_pairs(split: SequenceSplit, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs train[:-1] and next-item targets train[1:], the last `max_len` steps, left-padded: [U, L] each."""
    seqs = [np.asarray(s, dtype=np.int64) for s in split.users["train"] if len(s) >= 2]
    return pad_histories([s[:-1] for s in seqs], max_len), pad_histories([s[1:] for s in seqs], max_len)


def _sample_negatives(targets: torch.Tensor, inputs: torch.Tensor, n_items: int, k: int,
                      generator: torch.Generator) -> torch.Tensor:
    """k items per position drawn uniformly from 1..n_items-1, never one of the user's items in the window."""
    own = torch.zeros(len(targets), n_items, dtype=torch.bool)
    own.scatter_(1, torch.cat([inputs, targets], 1), True)
    own[:, 0] = True
    rows = torch.arange(len(targets)).view(-1, 1, 1).expand(*targets.shape, k)
    neg = torch.randint(1, n_items, (*targets.shape, k), generator=generator)
    for _ in range(100):
        clash = own[rows, neg]
        if not clash.any():
            break
        neg[clash] = torch.randint(1, n_items, (int(clash.sum()),), generator=generator)
    return neg


def _step_loss(model: SASRec, inputs, targets, config: RankingConfig, generator) -> torch.Tensor:
    hidden = model.encode(inputs)
    real = targets != 0
    h = hidden[real]
    if config.loss == "ce":
        logits = h @ model.item_emb.weight.T
        logits[:, 0] = -math.inf  # padding is never a next item
        return F.cross_entropy(logits, targets[real])
    neg = _sample_negatives(targets, inputs, model.n_items, config.negatives, generator)[real]
    pos_logit = (h * model.item_emb(targets[real])).sum(-1)
    neg_logit = (h.unsqueeze(1) * model.item_emb(neg)).sum(-1)
    return (F.binary_cross_entropy_with_logits(pos_logit, torch.ones_like(pos_logit))
            + F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit)))


def fit_ranking(model: SASRec, split: SequenceSplit, config: RankingConfig | None = None,
                checkpoint_dir: str | Path | None = None,
                on_validation: Callable[[dict], None] | None = None,
                tracker: Tracker | None = None) -> RankingResult:
    """Train `model` for next-item prediction, early-stop on valid NDCG@10, then rank the test targets.
    `tracker` (llmrec.tracking) gets train_loss, lr, samples_per_s every epoch and valid_<metric> at evaluations."""
    config = config or RankingConfig()
    if config.loss not in ("ce", "bce"):
        raise LlmrecError(f"ranking loss must be 'ce' or 'bce', not {config.loss!r}")
    if split.n_items > model.n_items:
        raise LlmrecError(f"{split.name}: {split.n_items} item ids, the model has only {model.n_items}")
    inputs, targets = training_pairs(split, model.config.max_len)
    if not len(inputs):
        raise LlmrecError(f"{split.name}: no user has two train items to learn a next item from")
    valid_hist, valid_target = eval_sequences(split, "valid")
    lr = config.lr if config.lr is not None else model.config.lr
    wd = config.weight_decay if config.weight_decay is not None else model.config.weight_decay
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    device = model.item_emb.weight.device

    fingerprint = {
        "model": model.describe(), "lr": lr, "weight_decay": wd, "loss": config.loss,
        "negatives": config.negatives, "batch_size": config.batch_size, "seed": config.seed,
        "eval_every": config.eval_every, "exclude_history": config.exclude_history, "users": len(split.users)}
    n = len(inputs)

    def train_epoch(epoch: int) -> dict:
        gen = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, config.batch_size):
            idx = order[start:start + config.batch_size]
            loss = _step_loss(model, inputs[idx].to(device), targets[idx].to(device), config, gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        return {"loss": total / n}

    def validate() -> dict:
        return leave_one_out_metrics(rank_targets(model, valid_hist, valid_target, config.exclude_history,
                                            config.eval_batch_size))

    def validated(record: dict) -> None:
        if on_validation is not None and "valid_ndcg@10" in record:
            on_validation(record)

    loop = run_epochs(model, optimizer, train_epoch, validate, epochs=config.epochs, metric="ndcg@10",
                      eval_every=config.eval_every, patience=config.patience, samples_per_epoch=n,
                      checkpoint=Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir is not None else None,
                      fingerprint=fingerprint, seed=config.seed, tracker=tracker, progress=config.progress,
                      on_epoch_end=validated)
    test_hist, test_target = eval_sequences(split, "test")
    test = leave_one_out_metrics(rank_targets(model, test_hist, test_target, config.exclude_history,
                                        config.eval_batch_size))
    return RankingResult(model=model, state_dict=loop.best_state, best_epoch=loop.best_epoch,
                         best_valid_ndcg10=loop.best_value, history=loop.history, stopped_early=loop.stopped_early,
                         test=test, seconds=loop.seconds, description=model.describe())


def train_ranking(split: SequenceSplit, config: RankingConfig | None = None, model_overrides: dict | None = None,
                  checkpoint_dir: str | Path | None = None, tracker: Tracker | None = None) -> RankingResult:
    """SASRec (ranking defaults `RANKING_SASREC` + overrides), seeded by `config.seed`, trained by `fit_ranking`."""
    config = config or RankingConfig()
    torch.manual_seed(config.seed)
    model = build_model("sasrec", split.n_users, split.n_items, **{**RANKING_SASREC, **(model_overrides or {})})
    return fit_ranking(model, split, config, checkpoint_dir, tracker=tracker)
