"""Deep Interest Network (Zhou et al., 2018) as in CoLLM's `RecEncoder_DIN`.

Three embedding tables of size dim/3 each: user id, target item id, history item ids (a table of its own). A local
activation unit scores every history item against the target from [q, k, q - k, q * k] through Linear -> Dice ->
Linear -> Linear(1); the scores are used as they are (no softmax, as in the paper) to sum the history embeddings.
The MLP [200, 80, 1] with Dice and dropout reads [target item, pooled history, user] and gives the logit (the
official module ends in a sigmoid; we return the logit and train with BCE-with-logits, the same loss).

Vectors for CoLLM, as the official `all_encode` / `item_encoder` do: the user vector is the whole input of the MLP,
[target item, attention-pooled history, user id] (dim), so it depends on the target item; the item vector is the
target item embedding repeated three times (dim), so both live in one space of the same size.

Difference from the official code: the attention unit (and the batch statistics of its Dice) runs on the real
history positions only. Officially, padded positions pass through it too and are masked afterwards, so in training
mode the amount of padding in a batch shifts the BatchNorm statistics; here padding has no effect at all.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from llmrec.collab.base import CollabModel, crop_history


@dataclass
class DINConfig:
    """DIN, ML-1M defaults of CoLLM (docs/papers.md; official checkpoint `DIN_lr0.0001-dp-0.2-wd-0.0001`)."""

    dim: int = 192
    """Total embedding size; each of the three id tables (user, item, history) gets dim / 3."""
    attention_hidden: list = field(default_factory=lambda: [64, 16])
    """Hidden sizes of the local activation unit (Dice after all but the last), then Linear(., 1)."""
    mlp_hidden: list = field(default_factory=lambda: [200, 80])
    """Hidden sizes of the output MLP (each followed by Dice and dropout), then Linear(., 1)."""
    dropout: float = 0.2
    """Dropout in the output MLP (Amazon-Book: 0.8)."""
    history_length: int = 10
    """History ids read: the last 10."""
    lr: float = 1e-4
    """Adam learning rate."""
    weight_decay: float = 1e-4
    """Adam weight decay."""


class Dice(nn.Module):
    """Data-adaptive activation: x * (alpha (1 - p) + p), p = sigmoid(BatchNorm(x))."""

    def __init__(self, size: int, eps: float = 1e-8):
        super().__init__()
        self.bn = nn.BatchNorm1d(size, eps=eps)
        self.alpha = nn.Parameter(torch.zeros(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] < 2:  # batch statistics need two rows: fall back to the running ones
            bn = self.bn
            normed = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        else:
            normed = self.bn(x)
        p = torch.sigmoid(normed)
        return x * (self.alpha * (1 - p) + p)


def dice_mlp(sizes: list[int], dropout: float = 0.0) -> nn.Sequential:
    """Linear(sizes[0], sizes[1]), then [Dice, Dropout, Linear] for each further size (official FullyConnectedLayer)."""
    layers: list[nn.Module] = [nn.Linear(sizes[0], sizes[1])]
    for a, b in zip(sizes[1:-1], sizes[2:]):
        layers.append(Dice(a))
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)


class DIN(CollabModel):
    name = "din"
    config_class = DINConfig

    def __init__(self, n_users: int, n_items: int, config: DINConfig | None = None):
        super().__init__(n_users, n_items, config or DINConfig())
        c = self.config
        if c.dim % 3:
            raise ValueError(f"DIN dim must be a multiple of 3 (three id tables), got {c.dim}")
        e = c.dim // 3
        self.user_emb = nn.Embedding(self.n_users, e)
        self.item_emb = nn.Embedding(self.n_items, e)
        self.hist_emb = nn.Embedding(self.n_items, e)
        self.attention_unit = nn.Sequential(dice_mlp([4 * e, *c.attention_hidden]),
                                            nn.Linear(c.attention_hidden[-1], 1))
        self.mlp = dice_mlp([3 * e, *c.mlp_hidden, 1], c.dropout)
        for m in self.modules():  # official: xavier-normal weights and embeddings, zero biases
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.xavier_normal_(m.weight)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def history_length(self) -> int:
        return self.config.history_length

    def attention_weights(self, query: torch.Tensor, history: torch.Tensor,
                          keys: torch.Tensor | None = None) -> torch.Tensor:
        """Activation weight of every history slot [B, L] (0 on padding) for target embeddings `query` [B, e]."""
        keys = self.hist_emb(history) if keys is None else keys
        rows, cols = (history != 0).nonzero(as_tuple=True)
        weights = keys.new_zeros(history.shape)
        if len(rows):
            q, k = query[rows], keys[rows, cols]
            weights = weights.index_put((rows, cols), self.attention_unit(torch.cat([q, k, q - k, q * k], -1))[:, 0])
        return weights

    def user_embedding(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[target item, attention-pooled history, user id]: the MLP input (official `all_encode`)."""
        history = crop_history(batch["history"], self.config.history_length)
        item = self.item_emb(batch["item"])
        keys = self.hist_emb(history)
        pooled = (self.attention_weights(item, history, keys).unsqueeze(-1) * keys).sum(1)
        return torch.cat([item, pooled, self.user_emb(batch["user"])], -1)

    def item_embedding(self, items: torch.Tensor) -> torch.Tensor:
        item = self.item_emb(items)
        return torch.cat([item, item, item], -1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.mlp(self.user_embedding(batch))[:, 0]
