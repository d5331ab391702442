"""CoLLM's model: the LLM (with its stage-1 LoRA), a collaborative model, and the mapping MLP between them.

The MLP is Linear(d, 10d) -> ReLU -> Linear(10d, hidden_size), as in the paper. Its outputs replace the input
embeddings at the prompt's user and item slot positions, which the prompt builder recorded explicitly (the
official code searched the ids for `<unk>`; we never do).
"""
from __future__ import annotations

import torch
from torch import nn

from llmrec.data.samples import pad_histories
from llmrec.llm.scoring import Batch, token_embeddings


TARGET_AWARE = ("din",)
"""Collaborative models whose user vector depends on the target item (DIN attends over the history from it)."""


class Mapping(nn.Module):
    def __init__(self, collab_dim: int, hidden_size: int, expansion: int = 10):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(collab_dim, expansion * collab_dim), nn.ReLU(),
                                 nn.Linear(expansion * collab_dim, hidden_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CoLLM(nn.Module):
    """Holds the three parts; `embed` is the scorer's embedding hook."""

    def __init__(self, llm: nn.Module, collab: nn.Module, hidden_size: int):
        super().__init__()
        self.llm = llm
        self.collab = collab
        self.mapping = Mapping(collab.dim, hidden_size)
        self.tune_collab = False

    def set_trainable(self, tune_collab: bool) -> None:
        """Stage 2: LoRA and backbone frozen, the MLP trains (and the collaborative model if asked)."""
        self.tune_collab = tune_collab
        for p in self.llm.parameters():
            p.requires_grad_(False)
        for p in self.collab.parameters():
            p.requires_grad_(tune_collab)
        for p in self.mapping.parameters():
            p.requires_grad_(True)
        self.train(self.training)

    def train(self, mode: bool = True) -> "CoLLM":
        """A frozen collaborative model stays in eval mode (no dropout in its embeddings), as in the official code."""
        super().train(mode)
        if not self.tune_collab:
            self.collab.eval()
        return self

    def _collab_batch(self, prompts, device) -> dict[str, torch.Tensor]:
        length = max(1, int(getattr(self.collab, "history_length", 0)))
        return {"user": torch.tensor([p.user_id for p in prompts], device=device),
                "item": torch.tensor([p.item_id for p in prompts], device=device),
                "history": pad_histories([p.history for p in prompts], length).to(device)}

    def slot_vectors(self, prompts, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Mapped user and item vectors [B, hidden] for these prompts' rows."""
        batch = self._collab_batch(prompts, device)
        return self.mapping(self.collab.user_embedding(batch)), self.mapping(self.collab.item_embedding(batch["item"]))

    def prefix_key(self, prompt) -> tuple:
        """What the user slot in a prompt's shared prefix reads besides its ids (YesScorer prefix_key): the user
        and their history; for a model whose user vector depends on the target item (DIN), that item too."""
        key = (prompt.user_id, prompt.history)
        return key + (prompt.item_id,) if self.collab.name in TARGET_AWARE else key

    def embed(self, input_ids: torch.Tensor, batch: Batch) -> torch.Tensor:
        embeds = token_embeddings(self.llm, input_ids)
        user_vec, item_vec = self.slot_vectors(batch.prompts, input_ids.device)
        embeds = embeds.clone()
        for slot, vec in (("user", user_vec), ("item", item_vec)):
            cols = batch.slot_columns(slot)
            rows = torch.nonzero(cols >= 0).squeeze(1)
            if len(rows):
                embeds[rows, cols[rows]] = vec[rows].to(embeds.dtype)
        return embeds
