"""The interface every collaborative model shares, so trainers and LLM methods (CoLLM) can use any of them.

A batch is a dict of tensors: `user` [B], `item` [B], `history` [B, L] (the user's earlier positives, oldest first,
left-padded with 0; see `llmrec.data.samples.click_tensors`) and `label` [B] (ignored by the models).

- `forward(batch) -> [B]` click logits (BCE-with-logits is the training loss);
- `user_embedding(batch) -> [B, dim]` and `item_embedding(items) -> [B, dim]`: the collaborative vectors an LLM
  method maps into its token space;
- `history_length`: how many history ids the model reads (0: none), so callers pad histories to that length;
- `prepare(train)`: data-dependent set-up from the train frame before training (LightGCN builds its graph).
"""
from __future__ import annotations

from dataclasses import asdict

import pandas as pd
import torch
from torch import nn


class CollabModel(nn.Module):
    """Base class: holds the id-space sizes and the config; subclasses implement the four methods."""

    name: str = ""
    config_class: type = object

    def __init__(self, n_users: int, n_items: int, config):
        super().__init__()
        self.n_users = int(n_users)
        """User ids 0..n_users-1 (0 reserved for padding / unknown)."""
        self.n_items = int(n_items)
        """Item ids 0..n_items-1 (0 is the padding id)."""
        self.config = config

    @property
    def dim(self) -> int:
        """Size of the vectors returned by `user_embedding` and `item_embedding`."""
        raise NotImplementedError

    @property
    def history_length(self) -> int:
        return 0

    def prepare(self, train: pd.DataFrame) -> None:
        """Set up what depends on the training data; most models need nothing."""

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def user_embedding(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def item_embedding(self, items: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> dict:
        """Everything needed to rebuild the model: name, sizes, config (see `llmrec.collab.build_model`)."""
        return {"name": self.name, "n_users": self.n_users, "n_items": self.n_items, "config": asdict(self.config)}


def crop_history(history: torch.Tensor, length: int) -> torch.Tensor:
    """The last `length` columns of a left-padded history, left-padding with 0 when it is shorter."""
    if history.dim() != 2:
        raise ValueError(f"history must be [batch, length], got shape {tuple(history.shape)}")
    have = history.shape[1]
    if have >= length:
        return history[:, have - length:]
    return torch.nn.functional.pad(history, (length - have, 0), value=0)
