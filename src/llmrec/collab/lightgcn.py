"""LightGCN (He et al., 2020) as CoLLM trains it: pointwise BCE, graph of the positive train pairs.

Users and items are the nodes of one bipartite graph (user u is node u, item i is node n_users + i). With A its
0/1 adjacency and D its degrees, E_{k+1} = D^-1/2 A D^-1/2 E_k (no self loops; isolated nodes have a zero row), and
the final embedding is the mean of E_0..E_K. The logit is the inner product of the final user and item vectors.
The graph lives in buffers, so a saved state dict carries it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from llmrec.collab.base import CollabModel


@dataclass
class LightGCNConfig:
    """LightGCN, ML-1M defaults of CoLLM (docs/papers.md)."""

    dim: int = 64
    """Embedding size."""
    layers: int = 2
    """Propagation layers K; the output is the mean of layers 0..K."""
    init_std: float = 0.1
    """Std of the normal initialisation of the layer-0 embeddings (official `init_emb`)."""
    lr: float = 1e-2
    """Adam learning rate."""
    weight_decay: float = 1e-4
    """Adam weight decay (on the layer-0 embeddings)."""


def normalized_adjacency(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int):
    """Edges (both directions) and weights 1/sqrt(d_a d_b) of the symmetric-normalised user-item graph."""
    pairs = np.unique(np.stack([np.asarray(users, np.int64), np.asarray(items, np.int64)], 1), axis=0)
    u, i = pairs[:, 0], pairs[:, 1] + n_users
    src = np.concatenate([u, i])
    dst = np.concatenate([i, u])
    degree = np.bincount(src, minlength=n_users + n_items).astype(np.float64)
    weight = 1.0 / np.sqrt(degree[src] * degree[dst])
    return torch.from_numpy(np.stack([src, dst])), torch.from_numpy(weight.astype(np.float32))


class LightGCN(CollabModel):
    name = "lightgcn"
    config_class = LightGCNConfig

    def __init__(self, n_users: int, n_items: int, config: LightGCNConfig | None = None):
        super().__init__(n_users, n_items, config or LightGCNConfig())
        d = self.config.dim
        self.user_emb = nn.Embedding(self.n_users, d)
        self.item_emb = nn.Embedding(self.n_items, d)
        nn.init.normal_(self.user_emb.weight, std=self.config.init_std)
        nn.init.normal_(self.item_emb.weight, std=self.config.init_std)
        self.register_buffer("edge_index", torch.zeros(2, 0, dtype=torch.long))
        self.register_buffer("edge_weight", torch.zeros(0))
        self._adj = None

    @property
    def dim(self) -> int:
        return self.config.dim

    def prepare(self, train: pd.DataFrame) -> None:
        """Build the graph from the positive rows of the train frame."""
        pos = train[train["label"] > 0]
        self.set_graph(pos["user_id"].to_numpy(), pos["item_id"].to_numpy())

    def set_graph(self, users, items) -> None:
        index, weight = normalized_adjacency(users, items, self.n_users, self.n_items)
        device = self.user_emb.weight.device
        self.edge_index = index.to(device)
        self.edge_weight = weight.to(device)
        self._adj = None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The graph's size is data-dependent: take the saved buffers' shapes before the default copy.
        for name in ("edge_index", "edge_weight"):
            saved = state_dict.get(prefix + name)
            if saved is not None:
                setattr(self, name, torch.empty_like(saved, device=getattr(self, name).device))
        self._adj = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def adjacency(self) -> torch.Tensor:
        n = self.n_users + self.n_items
        if self._adj is None or self._adj.device != self.edge_weight.device:
            # built once per graph; checked, so a corrupt loaded graph raises instead of crashing
            self._adj = torch.sparse_coo_tensor(self.edge_index, self.edge_weight, (n, n),
                                                check_invariants=True).coalesce()
        return self._adj

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (layer-mean) embeddings of all users [n_users, d] and all items [n_items, d]."""
        x = torch.cat([self.user_emb.weight, self.item_emb.weight])
        adj = self.adjacency()
        total = x
        for _ in range(self.config.layers):
            x = torch.sparse.mm(adj, x)
            total = total + x
        out = total / (self.config.layers + 1)
        return out[: self.n_users], out[self.n_users:]

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        users, items = self.propagate()
        return (users[batch["user"]] * items[batch["item"]]).sum(-1)

    def user_embedding(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.propagate()[0][batch["user"]]

    def item_embedding(self, items: torch.Tensor) -> torch.Tensor:
        return self.propagate()[1][items]
