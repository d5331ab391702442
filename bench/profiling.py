"""What the profiler shows: torch.profiler over one scoring batch and one LoRA training step, top ops by self time."""
from __future__ import annotations

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from bench.common import Context, Section, table
from llmrec.llm.scoring import ScoringConfig, YesScorer

TOP = 12
GEMM = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")
ATTENTION = ("sdpa", "scaled_dot_product", "flash_attention", "aten::_softmax", "aten::softmax")


def _category(op: str) -> str:
    if op in GEMM:
        return "matmul (mm / addmm / bmm)"
    if any(k in op for k in ATTENTION):
        return "attention kernel (SDPA / softmax)"
    if op in ("aten::copy_", "aten::contiguous", "aten::clone", "aten::cat", "aten::index", "aten::index_select",
              "aten::embedding", "aten::_to_copy", "aten::t", "aten::transpose", "aten::view", "aten::reshape",
              "aten::expand", "aten::slice", "aten::select", "aten::empty", "aten::zeros", "aten::fill_"):
        return "copies / layout / allocation"
    if op.startswith("aten::") or op.startswith("Optimizer"):
        return "elementwise and other aten ops"
    return "other (Python, autograd nodes)"


def _report(sec: Section, name: str, prof, wall: float) -> dict[str, float]:
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: -e.self_cpu_time_total)
    rows = [[f"`{e.key}`", f"{e.self_cpu_time_total / 1e3:.1f}", f"{e.self_cpu_time_total / total:.1%}", e.count]
            for e in events[:TOP]]
    cats: dict[str, float] = {}
    for e in events:
        c = _category(e.key)
        cats[c] = cats.get(c, 0.0) + e.self_cpu_time_total / total
    sec.add(f"**{name}** (wall {wall:.2f} s under the profiler; self CPU time of all "
            f"recorded ops {total / 1e6:.2f} s):", "")
    sec.add(*table(["op", "self CPU ms", "share", "calls"], rows), "")
    sec.add("By kind: " + "; ".join(f"{k} {v:.0%}" for k, v in sorted(cats.items(), key=lambda kv: -kv[1])) + ".", "")
    return cats


def run(ctx: Context, sec: Section) -> None:
    import time

    from bench.training import lora_model

    b = ctx.budget
    model, tok = ctx.backbone
    rows = ctx.test_rows(b.profile_batch, seed=2)
    prompts = ctx.prompts("id", "dot_decimal").for_frame(rows)
    lengths = [len(p) for p in prompts]
    sec.add(f"torch.profiler (CPU) around one batch of {len(prompts)} BinLLM `id` prompts ({np.mean(lengths):.0f} "
            f"tokens on average): a `YesScorer.score` call with all switches on, then one LoRA training step "
            f"(forward, BCE loss, backward; no optimizer update). py-spy is not installed, so only torch.profiler.", "")
    scorer = YesScorer(model, tok, ScoringConfig(batch_size=len(prompts)))
    scorer.score(prompts)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        scorer.score(prompts)
        wall = time.perf_counter() - t
    score_cats = _report(sec, "Scoring", prof, wall)

    lm = lora_model(ctx)
    lm.train()
    train_scorer = YesScorer(lm, tok, ScoringConfig(batch_size=len(prompts)))
    labels = torch.as_tensor(rows["label"].to_numpy(np.float32))
    train_scorer.loss(prompts, labels).backward()  # warm-up
    lm.zero_grad(set_to_none=True)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        train_scorer.loss(prompts, labels).backward()
        wall = time.perf_counter() - t
    train_cats = _report(sec, "LoRA training step", prof, wall)
    ctx.results["profile"] = {"scoring": score_cats, "training": train_cats}
    del lm
