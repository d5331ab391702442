"""BinLLM's config sections: `binllm` (prompt, code form, tuning) and `encoder` (the text-like encoding module)."""
from __future__ import annotations

import typing
from dataclasses import dataclass


@dataclass
class BinLLMConfig:
    """BinLLM specifics."""

    code_format: typing.Literal["binary", "dot_decimal"] = "dot_decimal"
    """'binary' (32 characters) or 'dot_decimal' (four numbers joined by '.')."""
    prompt: typing.Literal["id", "ids_only", "text"] = "id"
    """'id' (titles + codes, BinLLM), 'ids_only' (BinLLM-IO), 'text' (BinLLM-TO)."""
    tuning: typing.Literal["two_step", "intuitive"] = "two_step"
    """'two_step' (stage 1 text-only LoRA, stage 2 continues with codes) or 'intuitive' (one stage with codes)."""


@dataclass
class EncoderConfig:
    """Text-like encoding module (docs/papers.md, BinLLM)."""

    dim: int = 32
    """Code length in bits (the MF embedding size too). Dot-decimal needs a multiple of 8."""
    lr: float = 1e-2
    """Adam learning rate."""
    weight_decay: float = 1e-3
    """Adam weight decay."""
    batch_size: int = 2048
    """Training batch size."""
    beta_step: float = 1e-3
    """Increase of the sign probability beta every `beta_every` epochs (0.001 on ML-1M)."""
    beta_every: int = 2
    """Epochs between beta increases."""
    epochs: int = 200
    """Maximum training epochs."""
    patience: int = 20
    """Epochs without valid AUC gain before stopping."""
