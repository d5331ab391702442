"""Matrix factorisation: logit = <p_u, q_i>, no bias terms (CoLLM's `MatrixFactorization`)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from llmrec.collab.base import CollabModel


@dataclass
class MFConfig:
    """MF, ML-1M defaults of CoLLM / BinLLM (docs/papers.md)."""

    dim: int = 256
    """Embedding size of users and items."""
    init_std: float = 0.1
    """Std of the normal initialisation. The official code keeps PyTorch's N(0, 1) default (set 1.0 for it): logits
    start huge, valid AUC sits near 0.5 for 100-200 epochs, and early stopping then often ends the run at chance
    level (ML-1M, patience 100: 3 of 5 seeds here, 2 of 5 in the official loop). 0.1 trains in 100-200 epochs to the
    same AUC on rows whose user and item appear in train (README, "Against the official code")."""
    lr: float = 1e-3
    """Adam learning rate."""
    weight_decay: float = 1e-4
    """Adam weight decay (L2 on all parameters)."""


class MF(CollabModel):
    name = "mf"
    config_class = MFConfig

    def __init__(self, n_users: int, n_items: int, config: MFConfig | None = None):
        super().__init__(n_users, n_items, config or MFConfig())
        d = self.config.dim
        self.user_emb = nn.Embedding(self.n_users, d, padding_idx=0)
        self.item_emb = nn.Embedding(self.n_items, d, padding_idx=0)
        for emb in (self.user_emb, self.item_emb):
            nn.init.normal_(emb.weight, std=self.config.init_std)
            with torch.no_grad():
                emb.weight[0].zero_()  # padding id scores 0 against everything

    @property
    def dim(self) -> int:
        return self.config.dim

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return (self.user_emb(batch["user"]) * self.item_emb(batch["item"])).sum(-1)

    def user_embedding(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.user_emb(batch["user"])

    def item_embedding(self, items: torch.Tensor) -> torch.Tensor:
        return self.item_emb(items)
