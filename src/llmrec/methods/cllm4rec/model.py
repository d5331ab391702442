"""The CLLM4Rec network: one frozen backbone shared by two sets of user/item token embeddings.

The backbone is never resized. Input ids >= V (its vocabulary) are ID tokens (see `tokens.IdVocab`) and are looked
up in the tables of the side being run: `collab` (the collaborative LM and the recommender) or `content` (the
content LM); the sequence goes in as `inputs_embeds`. Heads:
- collaborative LM and recommender: logits over items only, the hidden state times the side's item table (tied,
  as in the official code), the hidden state first scaled to unit norm with `item_head="normalized"` (ours: the
  logits are then bounded by the item rows' norms, so large learning rates stay stable); item id 0 (padding)
  gets -inf;
- content LM: the backbone's own vocabulary head.
Mutual regulariser: for the ID tokens of a batch, the squared distance between this side's embedding and the
other side's, which is detached (held fixed), so only this side moves.
Encoder: `encoder="llm"` (CLLM4Rec) runs the backbone; `encoder="mean"` (a control without the LLM) gives every
position the running mean of the ID-token rows up to it (`last_hidden`: the mean of the prompt's user and item
rows), with the same tables and heads; `encoder="residual"` gives, on the collaborative side, the unit mean plus
`gate` times the unit backbone state, the gate a trainable scalar from 0 (it trains with the collaborative tables).
"""
from __future__ import annotations

import torch
from torch import nn

from llmrec.errors import LlmrecError
from llmrec.methods.cllm4rec.config import ENCODERS, ITEM_HEADS

SIDES = ("collab", "content")


class IdEmbeddings(nn.Module):
    """One side's user table [n_users, d] and item table [n_items, d]."""

    def __init__(self, n_users: int, n_items: int, dim: int, std: float, generator: torch.Generator | None = None):
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        with torch.no_grad():
            for table in (self.user, self.item):
                table.weight.copy_(torch.randn(table.weight.shape, generator=generator) * std)


class CLLM4RecModel(nn.Module):
    """Backbone (frozen unless LoRA adapters were injected) + collaborative and content ID-token tables."""

    def __init__(self, backbone, n_users: int, n_items: int, init_std: float | None = None, seed: int = 0,
                 item_head: str = "normalized", encoder: str = "llm"):
        super().__init__()
        if item_head not in ITEM_HEADS or encoder not in ENCODERS:
            raise LlmrecError(f"CLLM4RecModel: item_head must be one of {ITEM_HEADS} and encoder one of {ENCODERS} "
                              f"(got {item_head!r}, {encoder!r})")
        self.backbone = backbone
        self.item_head, self.encoder = item_head, encoder
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.vocab_size = backbone.get_input_embeddings().num_embeddings
        dim = backbone.get_input_embeddings().embedding_dim
        std = init_std if init_std is not None else getattr(backbone.config, "initializer_range", 0.02)
        for p in backbone.parameters():
            p.requires_grad_(False)
        gen = torch.Generator().manual_seed(seed)
        self.collab = IdEmbeddings(n_users, n_items, dim, std, gen)
        self.content = IdEmbeddings(n_users, n_items, dim, std, gen)
        # The tables are trainable: they stay float32 (master weights) on a bf16 backbone, or AdamW's small updates
        # would round away; `embed` casts the rows it hands the backbone to its dtype.
        device = backbone.get_input_embeddings().weight.device
        self.collab.to(device=device)
        self.content.to(device=device)
        if encoder == "residual":  # 0: the model starts as the "mean" control (float32, as the tables)
            self.gate = nn.Parameter(torch.zeros((), device=device))

    # ------------------------------------------------------------------ training switches
    def set_trainable(self, collab: bool, content: bool, lora: bool = True) -> None:
        """Which tables (and LoRA adapters, if any) receive gradients; the backbone's own weights never do."""
        for p in self.collab.parameters():
            p.requires_grad_(collab)
        for p in self.content.parameters():
            p.requires_grad_(content)
        if self.encoder == "residual":
            self.gate.requires_grad_(collab)
        for name, p in self.backbone.named_parameters():
            p.requires_grad_(lora and "lora_" in name)

    def table(self, side: str) -> IdEmbeddings:
        if side not in SIDES:
            raise LlmrecError(f"unknown side {side!r}; expected one of {SIDES}")
        return getattr(self, side)

    # ------------------------------------------------------------------ forward pieces
    def embed(self, ids: torch.Tensor, side: str, user_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T] ids -> [B, T, d] input embeddings; `user_vectors` [B, d] replaces every user token of a row."""
        t = self.table(side)
        v, u = self.vocab_size, self.n_users
        is_user = (ids >= v) & (ids < v + u)
        is_item = ids >= v + u
        out = self.backbone.get_input_embeddings()(torch.where(ids < v, ids, 0))
        out = torch.where(is_user[..., None], t.user(torch.where(is_user, ids - v, 0)).to(out.dtype), out)
        out = torch.where(is_item[..., None], t.item(torch.where(is_item, ids - v - u, 0)).to(out.dtype), out)
        if user_vectors is not None:
            out = torch.where(is_user[..., None], user_vectors[:, None, :].to(out.dtype), out)
        return out

    def hidden(self, ids: torch.Tensor, attention_mask: torch.Tensor, side: str,
               user_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """Last-layer hidden states [B, T, d] (right-padded rows; positions count from 0 in every row)."""
        e = self.embed(ids, side, user_vectors)
        if self.encoder == "mean":
            return self._running_id_mean(ids, attention_mask, e)
        out = self.backbone.get_decoder()(inputs_embeds=e, attention_mask=attention_mask,
                                          use_cache=False).last_hidden_state
        if self.encoder == "residual" and side == "collab":
            unit = torch.nn.functional.normalize
            mean = self._running_id_mean(ids, attention_mask, e)
            return unit(mean.float(), dim=-1) + self.gate * unit(out.float(), dim=-1)
        return out

    def _running_id_mean(self, ids, attention_mask, e):
        """[B, T, d]: at each position, the mean of the ID-token embeddings `e` (users and items) up to it (zero
        before the first one); padding positions are not ID tokens."""
        is_id = ((ids >= self.vocab_size) & attention_mask.bool()).to(e.dtype)[..., None]
        total = (e * is_id).cumsum(1)
        return total / is_id.cumsum(1).clamp(min=1)

    def item_logits(self, hidden: torch.Tensor, side: str = "collab") -> torch.Tensor:
        """[..., d] -> [..., n_items] scores against the side's item table (tied head); padding id 0 at -inf."""
        if self.item_head == "normalized":
            hidden = torch.nn.functional.normalize(hidden, dim=-1)
        weight = self.table(side).item.weight
        logits = hidden.to(weight.dtype) @ weight.T  # in the tables' float32 (autocast, when on, still decides)
        pad = torch.zeros(self.n_items, dtype=torch.bool, device=logits.device)
        pad[0] = True
        return logits.masked_fill(pad, float("-inf"))

    def vocab_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., d] -> [..., V] the backbone's own LM head."""
        return self.backbone.get_output_embeddings()(hidden)

    def regulariser(self, ids: torch.Tensor, side: str) -> torch.Tensor:
        """[B] per row: sum over its ID tokens of |e_side - sg(e_other)|^2 (padding ids are not ID tokens)."""
        this, other = self.table(side), self.table("content" if side == "collab" else "collab")
        v, u = self.vocab_size, self.n_users
        total = torch.zeros(ids.shape[0], dtype=this.user.weight.dtype, device=ids.device)
        for kind, mask, offset in (("user", (ids >= v) & (ids < v + u), v), ("item", ids >= v + u, v + u)):
            rows, cols = mask.nonzero(as_tuple=True)
            if not len(rows):
                continue
            idx = ids[rows, cols] - offset
            diff = getattr(this, kind)(idx) - getattr(other, kind)(idx).detach()
            total = total.index_add(0, rows, diff.pow(2).sum(-1))
        return total

    def last_hidden(self, ids: torch.Tensor, attention_mask: torch.Tensor, side: str = "collab",
                    user_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """[B, d] hidden state at each row's last real token (rows right-padded)."""
        h = self.hidden(ids, attention_mask, side, user_vectors)
        last = attention_mask.long().sum(1) - 1
        return h[torch.arange(len(ids), device=h.device), last]

    def mean_user_vector(self, side: str = "collab") -> torch.Tensor:
        """[d] mean of the trained user embeddings (ids 1..n_users-1): the token given to an unknown user."""
        return self.table(side).user.weight[1:].mean(0)


def inject_lora(backbone, r: int, alpha: int, dropout: float, targets) -> None:
    """Add peft LoRA adapters to the backbone in place (its other weights stay frozen), in float32."""
    from peft import LoraConfig, inject_adapter_in_model

    inject_adapter_in_model(LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets)),
                            backbone)
    # peft creates the adapters in the backbone's dtype; trainable weights stay float32 (as get_peft_model's
    # autocast_adapter_dtype does), peft's LoRA layers cast their input to the adapter's dtype and back.
    for name, p in backbone.named_parameters():
        if "lora_" in name and p.dtype in (torch.float16, torch.bfloat16):
            p.data = p.data.float()
