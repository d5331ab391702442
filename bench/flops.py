"""FLOP counts of a decoder-only transformer for scoring (forward) and LoRA training (frozen base).

What is counted (2 FLOPs per multiply-add; elementwise work — norms, activations, RoPE, softmax — is not):
- linear layers of the transformer blocks: 2 x N FLOPs per token forward, N = weights of every Linear inside the
  decoder layers (q, k, v, o, gate, up, down), the embedding table and the LM head excluded;
- attention: a prompt of T tokens has T(T+1)/2 causal (query, key) pairs; QK^T and AV each cost 2 x d_attn per pair
  per layer (d_attn = heads x head_dim), so 4 x n_layers x d_attn x T(T+1)/2 per prompt, i.e. on average
  2 x n_layers x (T+1) x d_attn per token for both products together. Only real, unmasked pairs count (the CPU
  kernel computes the padded square; that extra work is not useful and not counted);
- the answer-row projection: the last position onto the Yes and No rows of the output embedding, 2 x d x 2 per
  prompt (the full-vocabulary head at every position, the `last_position_head=False` path, is not useful work and
  is not counted: both paths are measured against the same useful FLOPs);
- LoRA adapters (A: d_in -> r, B: r -> d_out): 2 x (r d_in + r d_out) per token forward, i.e. 2 x N_lora.
Training with a frozen base: forward 2N, backward needs activation gradients only (2N) and no weight gradients
for the frozen weights, so 4N per token; LoRA weights need both (2 + 2 + 2) x N_lora = 6 N_lora; attention
backward is twice its forward (dQ, dK from dS; dV, dP from dO), so 3x the forward attention term; the answer
rows: forward + input gradient, 2 x 2 x d x 2 per prompt. Autograd skips layer 0's gradients towards the frozen
embeddings (q/k/v and LoRA A inputs, dK), which 4N counts: about 0.3% too much for 30 layers (tests/bench checks
the formulas against torch's FlopCounterMode with that correction written out).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Shape:
    """The sizes that the FLOP formulas need."""

    n_layers: int
    d_model: int
    d_attn: int
    """Query heads x head dim."""
    linear_params: int
    """N: weights of the Linear layers inside the decoder blocks (no embeddings, no LM head, no LoRA)."""
    lora_params: int
    """N_lora: weights of LoRA A and B matrices (0 without adapters)."""
    answer_rows: int = 2


def shape_of(model) -> Shape:
    """Sizes of a (possibly peft-wrapped) Hugging Face causal LM."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = inner.config.get_text_config() if hasattr(inner.config, "get_text_config") else inner.config
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    linear = lora = 0
    for name, module in inner.get_decoder().named_modules():
        if not isinstance(module, nn.Linear):
            continue
        if "lora_" in name:
            lora += module.weight.numel()
        else:
            linear += module.weight.numel()
    return Shape(n_layers=cfg.num_hidden_layers, d_model=cfg.hidden_size, d_attn=heads * head_dim,
                 linear_params=linear, lora_params=lora)


def attention_flops(s: Shape, length: int) -> float:
    """QK^T + AV over the causal pairs of one prompt, all layers (forward)."""
    return 4.0 * s.n_layers * s.d_attn * length * (length + 1) / 2


def scoring_flops(s: Shape, lengths) -> float:
    """Useful forward FLOPs of scoring prompts of these lengths."""
    total = 0.0
    for t in lengths:
        total += 2.0 * (s.linear_params + s.lora_params) * t + attention_flops(s, t) + 2.0 * s.d_model * s.answer_rows
    return total


def training_flops(s: Shape, lengths) -> float:
    """Useful FLOPs of one training step (forward + backward, frozen base, LoRA trained) on prompts of these lengths."""
    total = 0.0
    for t in lengths:
        total += (4.0 * s.linear_params + 6.0 * s.lora_params) * t + 3.0 * attention_flops(s, t) \
            + 2.0 * 2.0 * s.d_model * s.answer_rows
    return total


def suffix_flops(s: Shape, prefix: int, suffix_lengths) -> float:
    """Forward FLOPs of candidate suffixes that attend to a cached prefix of `prefix` tokens (plus the prefix once)."""
    total = 2.0 * (s.linear_params + s.lora_params) * prefix + attention_flops(s, prefix)
    for t in suffix_lengths:
        # pairs: each suffix token attends to the whole prefix and the causal part of the suffix
        pairs = t * prefix + t * (t + 1) / 2
        total += 2.0 * (s.linear_params + s.lora_params) * t + 4.0 * s.n_layers * s.d_attn * pairs \
            + 2.0 * s.d_model * s.answer_rows
    return total


def describe(s: Shape) -> str:
    return (f"{s.n_layers} layers, d_model {s.d_model}, d_attn {s.d_attn}, N = {s.linear_params / 1e6:.2f} M "
            f"linear weights in the blocks" + (f", N_lora = {s.lora_params / 1e3:.1f} k" if s.lora_params else ""))
