"""Prompt tokens per sample: text only, titles + binary codes, titles + dot-decimal codes (and IDs only)."""
from __future__ import annotations

import numpy as np

from bench.common import Context, Section, table


def run(ctx: Context, sec: Section) -> None:
    b = ctx.budget
    frame = ctx.test_rows(b.token_rows, seed=1)
    variants = [("text only (TALLRec / BinLLM stage 1)", "text", None),
                ("titles + binary codes (BinLLM, 32 bits)", "id", "binary"),
                ("titles + dot-decimal codes (BinLLM, compressed)", "id", "dot_decimal"),
                ("IDs only, dot-decimal (BinLLM-IO)", "ids_only", "dot_decimal")]
    rows, base = [], None
    for name, kind, fmt in variants:
        prompts = ctx.prompts(kind, fmt or "binary").for_frame(frame)
        lengths = np.array([len(p) for p in prompts])
        code = [(p.user_span[1] - p.user_span[0]) for p in prompts if p.user_span]
        base = base or lengths.mean()
        rows.append([name, f"{lengths.mean():.1f}", int(np.median(lengths)), f"{lengths.min()}-{lengths.max()}",
                     f"{np.mean(code):.1f}" if code else "-", f"x{lengths.mean() / base:.2f}"])
    sec.add(f"Mean over {len(frame)} random {ctx.split.name} test rows (tokenizer of `{ctx.budget.backbone}`; "
            f"codes from BinLLM's encoder trained {b.encoder_epochs} epochs on the split's train rows).", "")
    sec.add(*table(["prompt", "mean tokens", "median", "min-max", "tokens per user code", "vs text only"], rows))
