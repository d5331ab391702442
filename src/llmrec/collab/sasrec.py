"""SASRec (Kang & McAuley, 2018) as CoLLM uses it: the last hidden state of the history scores the target item.

Block layout follows the reference PyTorch port that CoLLM copied: the attention query is the layer-normed input,
keys and values the raw input, residual onto the normed query; then LayerNorm, a point-wise feed-forward with its
own residual, and the padded positions zeroed. Item embeddings are scaled by sqrt(d) and share the output table.

Two deliberate differences from the official code, both making the model padding-invariant:
- padded keys are masked out of attention (the official code leaves `key_padding_mask` commented out, so zero
  vectors still receive attention weight; `mask_padding=False` restores that); a padded query attends to itself
  only, and its output is zeroed;
- positions are counted back from the most recent item. With the official fixed window of `max_len` slots this is
  the same embedding per slot, relabelled; it also makes any shorter, unpadded sequence encode identically.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from llmrec.collab.base import CollabModel, crop_history


@dataclass
class SASRecConfig:
    """SASRec, ML-1M defaults of CoLLM (docs/papers.md and `baseline_train_sasrec.py`)."""

    dim: int = 64
    """Hidden size (item and position embeddings)."""
    blocks: int = 2
    """Self-attention blocks."""
    heads: int = 1
    """Attention heads (the baseline script uses 1; CoLLM's LLM config says 4 but loads a 1-head checkpoint)."""
    dropout: float = 0.2
    """Dropout on embeddings, attention weights and feed-forward layers."""
    max_len: int = 25
    """History ids read: the last `max_len` (25 on ML-1M, 20 on Amazon-Book)."""
    mask_padding: bool = True
    """Keep padded slots out of attention. False reproduces the official code, where zeroed padding vectors still
    take attention weight (a zero-score, zero-value slot), so the output depends on the amount of padding. The
    ML-1M config uses False to follow the official recipe; on that split the two settings agree within seed noise."""
    xavier_init: bool = False
    """Re-initialise every weight matrix (embeddings included) xavier-normal, as the original SASRec code does; CoLLM
    keeps PyTorch's defaults (N(0, 1) item embeddings), which suits click training but makes a full-softmax start
    with huge logits. The ranking recipe turns it on."""
    lr: float = 1e-2
    """Adam learning rate."""
    weight_decay: float = 1e-2
    """Adam weight decay. The paper lists 1e-4, but the official run behind the published 0.7078 used 1e-2 (its log
    line and checkpoint name `..._d64lr-0.01wd0.01len25.pth`, docs/papers.md); with 1e-4 it overfits after ~9 epochs."""


class Attention(nn.Module):
    """Multi-head attention with separate query and key/value inputs, initialised like nn.MultiheadAttention."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))
        bound = math.sqrt(6.0 / (dim + 3 * dim))  # xavier-uniform of the stacked [3d, d] in-projection
        for lin in (self.q, self.k, self.v):
            nn.init.uniform_(lin.weight, -bound, bound)
        for lin in (self.q, self.k, self.v, self.out):
            nn.init.zeros_(lin.bias)

    def forward(self, query: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, d, h = x.shape[0], x.shape[2], self.heads
        split = lambda t: t.view(b, t.shape[1], h, d // h).transpose(1, 2)  # noqa: E731
        y = F.scaled_dot_product_attention(split(self.q(query)), split(self.k(x)), split(self.v(x)), attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, query.shape[1], d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim, eps=1e-8)
        self.attn = Attention(dim, heads, dropout)
        self.ffn_norm = nn.LayerNorm(dim, eps=1e-8)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(dropout), nn.ReLU(), nn.Linear(dim, dim),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor, last_only: bool = False):
        q = self.attn_norm(x)
        if last_only:  # only the last position's output is wanted: queries from it alone, keys from all
            q, mask, keep = q[:, -1:], mask[..., -1:, :], keep[:, -1:]
        x = self.ffn_norm(q + self.attn(q, x, mask))
        return (x + self.ffn(x)) * keep


class SASRec(CollabModel):
    name = "sasrec"
    config_class = SASRecConfig

    def __init__(self, n_users: int, n_items: int, config: SASRecConfig | None = None):
        super().__init__(n_users, n_items, config or SASRecConfig())
        c = self.config
        if c.dim % c.heads:
            raise ValueError(f"SASRec dim {c.dim} is not divisible by heads {c.heads}")
        self.item_emb = nn.Embedding(self.n_items, c.dim, padding_idx=0)
        self.pos_emb = nn.Embedding(c.max_len, c.dim)
        self.emb_dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c.dim, c.heads, c.dropout) for _ in range(c.blocks))
        self.last_norm = nn.LayerNorm(c.dim, eps=1e-8)
        if c.xavier_init:
            for p in self.parameters():
                if p.dim() >= 2:
                    nn.init.xavier_normal_(p)
            with torch.no_grad():
                self.item_emb.weight[0].zero_()

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def history_length(self) -> int:
        return self.config.max_len

    def encode(self, seq: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """Hidden state at every position [B, L, d] of left-padded sequences [B, L], L <= max_len (causal: position
        t sees items up to t only), or at the last position only [B, 1, d] (cheaper: the last block skips the rest)."""
        length = seq.shape[1]
        if length > self.config.max_len:
            raise ValueError(f"sequence length {length} exceeds SASRec max_len {self.config.max_len}")
        real = seq != 0
        back = torch.arange(length - 1, -1, -1, device=seq.device)  # 0 = most recent slot
        x = self.item_emb(seq) * math.sqrt(self.config.dim) + self.pos_emb(back)
        keep = real.unsqueeze(-1).to(x.dtype)
        x = self.emb_dropout(x) * keep
        causal = torch.ones(length, length, dtype=torch.bool, device=seq.device).tril()
        eye = torch.eye(length, dtype=torch.bool, device=seq.device)
        allowed = causal & real[:, None, :] if self.config.mask_padding else causal.expand(len(seq), -1, -1)
        allowed = allowed | eye  # [B, L, L]; a padded query keeps only itself
        mask = allowed.unsqueeze(1)  # broadcast over heads
        for i, block in enumerate(self.blocks):
            x = block(x, mask, keep, last_only and i == len(self.blocks) - 1)
        return self.last_norm(x)

    def user_embedding(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Last hidden state of the (cropped) history: the sequence's representation."""
        return self.encode(crop_history(batch["history"], self.config.max_len), last_only=True)[:, -1]

    def item_embedding(self, items: torch.Tensor) -> torch.Tensor:
        return self.item_emb(items)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return (self.user_embedding(batch) * self.item_emb(batch["item"])).sum(-1)
