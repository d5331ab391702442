"""Pointwise click training of a collaborative model (CoLLM / BinLLM baselines).

BCE-with-logits on the (user, item, label) rows of the train frame, Adam, full passes in a shuffled order; after
every epoch the valid frame's AUC (valid_small in the papers) decides: the best weights are kept, and training stops
after `patience` epochs without a gain or at `epochs`. The test frame is then scored with the best weights, overall
and on its warm and cold rows (the frame's `warm` column).

Deterministic from `TrainConfig.seed`: epoch e's order comes from a generator seeded with (seed, e), and the global
RNG (dropout) is part of the checkpoint. The epochs, early stopping, checkpoints (with `checkpoint_dir`: after every
epoch; running the same call again continues from it and ends with the same weights as an uninterrupted run) and
tracking are `llmrec.collab.loop`'s; this module brings one epoch of BCE and the valid AUC.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from llmrec.collab import build_model
from llmrec.collab.loop import run_epochs
from llmrec.data.samples import click_tensors
from llmrec.tracking import Tracker
from llmrec.data.types import ClickSplit
from llmrec.errors import LlmrecError
from llmrec.metrics import auc, frame_metrics, uauc

CHECKPOINT_FILE = "last.safetensors"


@dataclass
class TrainConfig:
    """Pointwise BCE training of a classic model on click rows, with early stopping on valid AUC.

    Not `llmrec.llm.train.TrainConfig`: that one configures the LLM methods' step loop (AdamW over trainable
    parameters, warm-up and decay, DDP); this one whole epochs of Adam through `llmrec.collab.loop`."""

    lr: float | None = None
    """Adam learning rate; None: the model config's `lr` (its paper default)."""
    weight_decay: float | None = None
    """Adam weight decay; None: the model config's `weight_decay`."""
    batch_size: int = 1024
    """Training rows per step."""
    epochs: int = 1000
    """Maximum epochs (full passes over the train rows)."""
    patience: int = 50
    """Stop after this many epochs without a valid AUC gain (the official scripts use 50 to 100)."""
    seed: int = 2023
    """Seeds initialisation (in `train_on_split`), the shuffling of every epoch and dropout."""
    eval_batch_size: int = 8192
    """Rows per scoring batch."""
    progress: bool = True
    """Show a tqdm bar over epochs."""


@dataclass
class TrainResult:
    """Outcome of `fit`: the best weights, how training went, and test metrics."""

    model: torch.nn.Module
    """The trained model with its best weights loaded, in eval mode."""
    state_dict: dict[str, torch.Tensor]
    """The best weights (those with the highest valid AUC)."""
    best_epoch: int
    """1-based epoch of the best weights (0: no epoch ran)."""
    best_valid_auc: float
    history: list[dict] = field(default_factory=list)
    """One record per epoch: epoch, loss (mean train BCE), valid_auc, valid_uauc, seconds."""
    stopped_early: bool = False
    """True when patience ran out before `epochs`."""
    test: dict[str, float] = field(default_factory=dict)
    """click_metrics on the test frame: auc, uauc, gauc, rows; the same with warm_ and cold_ prefixes."""
    seconds: float = 0.0
    """Wall time of training and validation over all sessions (a resumed run adds up)."""
    description: dict = field(default_factory=dict)
    """Model name, sizes and config (`CollabModel.describe()`), to rebuild it."""

    @property
    def valid_auc(self) -> list[float]:
        return [h["valid_auc"] for h in self.history]

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    @property
    def seconds_per_epoch(self) -> float:
        return self.seconds / max(1, self.epochs_run)


def _history_length(model) -> int:
    return int(getattr(model, "history_length", 0))


def check_frame(frame: pd.DataFrame, what: str, n_users: int | None, n_items: int | None,
                needs_history: bool) -> None:
    """Clear one-line errors for frames a model cannot read (missing columns, ids out of range, bad labels)."""
    needed = ["user_id", "item_id", "label"] + (["history"] if needs_history else [])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise LlmrecError(f"{what} frame: missing column(s) {', '.join(missing)}")
    if frame.empty:
        raise LlmrecError(f"{what} frame: no rows")
    for col, limit in (("user_id", n_users), ("item_id", n_items)):
        values = frame[col].to_numpy()
        if limit is not None and (values.min() < 0 or values.max() >= limit):
            bad = values.max() if values.max() >= limit else values.min()
            raise LlmrecError(f"{what} frame: {col} {bad} outside the model's ids 0..{limit - 1}")
    labels = frame["label"].to_numpy()
    if not np.isin(labels, (0, 1)).all():
        raise LlmrecError(f"{what} frame: label must be 0 or 1, found {labels[~np.isin(labels, (0, 1))][0]!r}")
    if needs_history and n_items is not None:
        top = max((int(np.max(h)) for h in frame["history"] if len(h)), default=0)
        if top >= n_items:
            raise LlmrecError(f"{what} frame: history holds item id {top} outside the model's ids 0..{n_items - 1}")


def _tensors(model, frame: pd.DataFrame | dict) -> dict[str, torch.Tensor]:
    if isinstance(frame, dict):
        return frame
    return click_tensors(frame, _history_length(model))


def _device(model) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def predict(model: torch.nn.Module, frame: pd.DataFrame | dict, batch_size: int = 8192) -> np.ndarray:
    """Logits for every row of a click frame (or of a `click_tensors` dict), in eval mode, without gradients."""
    data = _tensors(model, frame)
    n = len(data["user"])
    device = _device(model)
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, n, batch_size):
        batch = {k: v[start:start + batch_size].to(device) for k, v in data.items()}
        out.append(model(batch).float().cpu())
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)


def evaluate(model, frame: pd.DataFrame, batch_size: int = 8192) -> dict[str, float]:
    """click_metrics of the frame overall, then on its warm rows (prefix warm_) and the others (cold_)."""
    return frame_metrics(frame, predict(model, frame, batch_size))


def _describe(model) -> dict:
    if hasattr(model, "describe"):
        return model.describe()
    config = getattr(model, "config", None)
    return {"class": type(model).__name__,
            "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else repr(config)}


def _resolve(value, model, name: str) -> float:
    if value is not None:
        return float(value)
    default = getattr(getattr(model, "config", None), name, None)
    if default is None:
        raise LlmrecError(f"TrainConfig.{name} is not set and {type(model).__name__}'s config has no default")
    return float(default)


def fit(model: torch.nn.Module, train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame | None = None,
        config: TrainConfig | None = None, checkpoint_dir: str | Path | None = None,
        on_epoch_end: Callable[[dict], None] | None = None, tracker: Tracker | None = None) -> TrainResult:
    """Train `model` on the `train` frame, early-stop on `valid` AUC, score `test` with the best weights.

    `on_epoch_end(record)` is called after each epoch's checkpoint is written (record: epoch, loss, valid_auc,
    valid_uauc, seconds). A model with an `on_epoch_end(epoch)` method (0-based epoch) is told after each pass;
    one with `extra_state() -> dict` gets it saved in checkpoints and restored by `load_extra_state(dict)`.
    `tracker` (llmrec.tracking) gets train_loss, lr, samples_per_s, valid_auc and valid_uauc every epoch.
    """
    config = config or TrainConfig()
    n_users, n_items = getattr(model, "n_users", None), getattr(model, "n_items", None)
    needs_history = _history_length(model) > 0
    for what, frame in (("train", train), ("valid", valid)) + ((("test", test),) if test is not None else ()):
        check_frame(frame, what, n_users, n_items, needs_history)
    if hasattr(model, "prepare"):
        model.prepare(train)
    lr, wd = _resolve(config.lr, model, "lr"), _resolve(config.weight_decay, model, "weight_decay")
    device = _device(model)
    train_t = {k: v.to(device) for k, v in _tensors(model, train).items()}
    valid_t = _tensors(model, valid)
    valid_users, valid_labels = valid["user_id"].to_numpy(), valid["label"].to_numpy()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)

    fingerprint = {"model": _describe(model), "lr": lr, "weight_decay": wd, "batch_size": config.batch_size,
                   "seed": config.seed, "train_rows": len(train), "valid_rows": len(valid)}
    n = len(train)

    def train_epoch(epoch: int) -> dict:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed * 1_000_003 + epoch))
        total = 0.0
        for start in range(0, n, config.batch_size):
            idx = order[start:start + config.batch_size].to(device)
            batch = {k: v[idx] for k, v in train_t.items()}
            loss = F.binary_cross_entropy_with_logits(model(batch), batch["label"].float())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        if hasattr(model, "on_epoch_end"):
            model.on_epoch_end(epoch - 1)
        return {"loss": total / n}

    def validate() -> dict:
        scores = predict(model, valid_t, config.eval_batch_size)
        return {"auc": auc(valid_labels, scores), "uauc": uauc(valid_users, valid_labels, scores)}

    loop = run_epochs(model, optimizer, train_epoch, validate, epochs=config.epochs, metric="auc",
                      patience=config.patience, samples_per_epoch=n,
                      checkpoint=Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir is not None else None,
                      fingerprint=fingerprint, seed=config.seed,
                      extra_state=model.extra_state if hasattr(model, "extra_state") else None,
                      load_extra_state=lambda extra: _restore_extra(model, extra) if extra else None,
                      tracker=tracker, progress=config.progress, on_epoch_end=on_epoch_end)
    test_metrics = evaluate(model, test, config.eval_batch_size) if test is not None else {}
    return TrainResult(model=model, state_dict=loop.best_state, best_epoch=loop.best_epoch,
                       best_valid_auc=loop.best_value, history=loop.history, stopped_early=loop.stopped_early,
                       test=test_metrics, seconds=loop.seconds, description=_describe(model))


def _restore_extra(model, extra: dict) -> None:
    if hasattr(model, "load_extra_state"):
        model.load_extra_state(extra)
    else:
        for key, value in extra.items():
            setattr(model, key, value)


def train_on_split(name: str, split: ClickSplit, config: TrainConfig | None = None,
                   model_overrides: dict | None = None, checkpoint_dir: str | Path | None = None,
                   valid_part: str = "valid_small",
                   on_epoch_end: Callable[[dict], None] | None = None) -> TrainResult:
    """Build model `name` (paper defaults + overrides) seeded by `config.seed`, fit it on `split.train`, early-stop
    on `valid_part`, and report test metrics (overall, warm, cold)."""
    config = config or TrainConfig()
    torch.manual_seed(config.seed)
    model = build_model(name, split.n_users, split.n_items, **(model_overrides or {}))
    return fit(model, split.train, split.part(valid_part), split.test, config, checkpoint_dir, on_epoch_end)
