"""BinLLM's text-like encoding module: collaborative embeddings -> binary codes -> text.

As in the paper's code: an MF model (d=32) trained from scratch, a separate Linear(32, 32) for users and for items,
tanh, then sign with a plain straight-through estimator. During training each element is independently the sign
value with probability beta and the tanh value otherwise; beta starts at 0 and grows by `beta_step` every
`beta_every` epochs, capped at 1. The score is the inner product of the two codes (range -d..d) trained with BCE.
In eval mode the codes are always pure binary. Forward has the collaborative models' interface, so the common
collab trainer trains it (it calls `on_epoch_end`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from llmrec.methods.binllm.config import EncoderConfig


class SignSTE(torch.autograd.Function):
    """+1 where x >= 0 else -1; the backward pass hands the gradient through unchanged."""

    @staticmethod
    def forward(ctx, x):
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad):
        return grad


class BinaryEncoder(nn.Module):
    name = "binmf"
    """As a collaborative model (CoLLM's `collm.collab_model=binmf`)."""

    def __init__(self, n_users: int, n_items: int, config: EncoderConfig | None = None):
        super().__init__()
        self.config = config or EncoderConfig()
        d = self.config.dim
        self.user_emb = nn.Embedding(n_users, d)
        self.item_emb = nn.Embedding(n_items, d)
        nn.init.normal_(self.user_emb.weight, std=0.1)
        nn.init.normal_(self.item_emb.weight, std=0.1)
        self.user_proj = nn.Linear(d, d)
        self.item_proj = nn.Linear(d, d)
        self.beta = 0.0
        self.epochs_done = 0

    @property
    def dim(self) -> int:
        """Code length: the size of `user_embedding` and `item_embedding`."""
        return self.config.dim

    def _encode(self, emb: torch.Tensor, proj: nn.Linear) -> torch.Tensor:
        soft = torch.tanh(proj(emb))
        hard = SignSTE.apply(soft)
        if not self.training:
            return hard
        take_sign = torch.rand_like(soft) < self.beta
        return torch.where(take_sign, hard, soft)

    def user_codes(self, users: torch.Tensor) -> torch.Tensor:
        return self._encode(self.user_emb(users), self.user_proj)

    def item_codes(self, items: torch.Tensor) -> torch.Tensor:
        return self._encode(self.item_emb(items), self.item_proj)

    # The collaborative-model interface (see llmrec.collab): forward gives logits, embeddings are the codes.
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return (self.user_codes(batch["user"]) * self.item_codes(batch["item"])).sum(-1)

    def user_embedding(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.user_codes(batch["user"])

    def item_embedding(self, items: torch.Tensor) -> torch.Tensor:
        return self.item_codes(items)

    def on_epoch_end(self, epoch: int) -> None:
        self.epochs_done = epoch + 1
        if self.epochs_done % self.config.beta_every == 0:
            self.beta = min(1.0, self.beta + self.config.beta_step)

    def extra_state(self) -> dict:
        return {"beta": self.beta, "epochs_done": self.epochs_done}

    @torch.no_grad()
    def all_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """Pure binary codes of every user and item as int8 arrays of 0/1 bits: [n_users, d], [n_items, d]."""
        was = self.training
        self.eval()
        device = self.user_emb.weight.device  # the encoder trains on the run's device (GPU when there is one)
        u = self.user_codes(torch.arange(self.user_emb.num_embeddings, device=device))
        i = self.item_codes(torch.arange(self.item_emb.num_embeddings, device=device))
        self.train(was)
        return (u > 0).to(torch.int8).cpu().numpy(), (i > 0).to(torch.int8).cpu().numpy()


def bits_to_text(bits, code_format: str = "binary") -> str:
    """A 0/1 bit vector as text: 'binary' gives '0110...'; 'dot_decimal' reads groups of 8 bits MSB first as 0..255
    joined by '.', like an IPv4 address."""
    bits = np.asarray(bits, dtype=np.int64).ravel()
    if code_format == "binary":
        return "".join("1" if b else "0" for b in bits)
    if code_format == "dot_decimal":
        if len(bits) % 8:
            raise ValueError(f"dot-decimal needs a multiple of 8 bits, got {len(bits)}")
        weights = 1 << np.arange(7, -1, -1)
        return ".".join(str(int((group * weights).sum())) for group in bits.reshape(-1, 8))
    raise ValueError(f"unknown code format {code_format!r}; expected 'binary' or 'dot_decimal'")


def text_to_bits(text: str) -> np.ndarray:
    """Inverse of `bits_to_text` for either form."""
    if "." in text:
        return np.array([(int(n) >> s) & 1 for n in text.split(".") for s in range(7, -1, -1)], dtype=np.int8)
    return np.array([c == "1" for c in text], dtype=np.int8)
