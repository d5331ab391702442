"""A tiny Task for the training-loop tests: a 2-layer MLP scoring synthetic, nearly separable rows."""
from __future__ import annotations

import numpy as np
import torch


def make_data(n: int, seed: int, dim: int = 8):
    """Features and labels from a fixed random logistic model (the same `w` for every seed)."""
    w = np.random.default_rng(0).normal(size=dim)
    x = np.random.default_rng(seed).normal(size=(n, dim))
    y = (x @ w + 0.3 * np.random.default_rng(seed + 1).normal(size=n) > 0).astype(np.float64)
    return torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)


def make_mlp(seed: int, dim: int = 8, hidden: int = 16, dropout: float = 0.0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.Tanh(), torch.nn.Dropout(dropout),
                               torch.nn.Linear(hidden, 1)).double()


class SimulatedKill(Exception):
    pass


class TinyTask:
    """Rows of (x, y); loss = BCE with logits; score = logit. `fail_at` raises inside the k-th loss call;
    `seen_rows` records the rows of every training batch."""

    def __init__(self, module, x, y, fail_at: int | None = None):
        self.module, self.x, self.y, self.fail_at, self.loss_calls = module, x, y, fail_at, 0
        self.seen_rows: list[list[int]] = []

    def trainable_module(self):
        return self.module

    def collate(self, rows):
        return {"x": self.x[rows], "y": self.y[rows], "rows": torch.tensor(rows), "n_tokens": 3 * len(rows)}

    def loss(self, batch):
        self.loss_calls += 1
        self.seen_rows.append(batch["rows"].tolist())  # recorded here: collate may run in a worker process
        if self.fail_at is not None and self.loss_calls == self.fail_at:
            raise SimulatedKill(f"simulated kill in loss call {self.loss_calls}")
        logits = self.module(batch["x"]).squeeze(-1)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["y"])

    def predict(self, batch):
        return self.module(batch["x"]).squeeze(-1)


class RowIdTask(TinyTask):
    """Scores each row by its own index: shows which rows evaluation returned, and in which order."""

    def predict(self, batch):
        return batch["rows"].double() + 0 * self.module(batch["x"]).squeeze(-1)
