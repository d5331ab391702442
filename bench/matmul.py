"""The machine's own fp32 matmul peak: large square products, and the shapes SmolLM2's linear layers run at."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.common import Context, Section, measure, table


def _gflops(flops: float, seconds: float) -> float:
    return flops / seconds / 1e9


def layer_shapes(d_model: int, d_ff: int, d_kv: int) -> list[tuple[str, int, int]]:
    """(name, d_in, d_out) of one Llama block's linear layers."""
    return [("q_proj / o_proj", d_model, d_model), ("k_proj / v_proj", d_model, d_kv),
            ("gate_proj / up_proj", d_model, d_ff), ("down_proj", d_ff, d_model)]


def run(ctx: Context, sec: Section) -> None:
    b = ctx.budget
    torch.manual_seed(0)
    n = b.matmul_n
    a, w = torch.randn(n, n), torch.randn(n, n)
    reps = max(b.reps, 5) if not ctx.smoke else 1
    t = measure({"square": lambda: torch.mm(a, w)}, reps)["square"]
    peak = _gflops(2.0 * n ** 3, t.median)
    ctx.results["peak_gflops"] = peak
    sec.add(f"Square fp32 `torch.mm` [{n}, {n}] x [{n}, {n}]: **{peak:.1f} GFLOP/s** (median of {reps}, "
            f"after one warm-up; repetitions {t.spread()} s). This is the peak the utilisation figures divide by.", "")

    # The shapes the LLM runs: M = batch x tokens rows through each linear layer, with nn.Linear's x @ W^T.
    d_model, d_ff, d_kv = (576, 1536, 192) if not ctx.smoke else (64, 128, 32)
    m = b.llm_rows
    rows, total_flops, total_seconds = [], 0.0, 0.0
    for name, d_in, d_out in layer_shapes(d_model, d_ff, d_kv):
        x, weight = torch.randn(m, d_in), torch.randn(d_out, d_in)
        ti = measure({"f": lambda: F.linear(x, weight)}, reps)["f"]
        flops = 2.0 * m * d_in * d_out
        uses = 2 if "/" in name else 1  # q and o; k and v; gate and up share a shape
        total_flops += uses * flops
        total_seconds += uses * ti.median
        rows.append([name, f"[{m}, {d_in}] x [{d_in}, {d_out}]", f"{_gflops(flops, ti.median):.1f}",
                     f"{_gflops(flops, ti.median) / peak:.0%}"])
    block = _gflops(total_flops, total_seconds)
    ctx.results["block_gflops"] = block
    # training's backward runs the transposed products (grad_x = grad_y @ W): same FLOPs, other memory layout
    gy, weight = torch.randn(m, d_ff), torch.randn(d_ff, d_model)
    tb = measure({"f": lambda: torch.mm(gy, weight)}, reps)["f"]
    rows.append(["backward of up_proj (grad @ W)", f"[{m}, {d_ff}] x [{d_ff}, {d_model}]",
                 f"{_gflops(2.0 * m * d_ff * d_model, tb.median):.1f}",
                 f"{_gflops(2.0 * m * d_ff * d_model, tb.median) / peak:.0%}"])
    sec.add(f"At the shapes of {'SmolLM2-135M' if not ctx.smoke else 'the tiny model'}'s linear layers, "
            f"M = {m} rows" + (" (a batch of 16 prompts x 200 tokens)" if m == 3200 else "") + ", `F.linear` as nn.Linear calls it:", "")
    sec.add(*table(["layer", "shape", "GFLOP/s", "of square peak"], rows))
    sec.add("", f"One whole block's linear layers at this M: **{block:.1f} GFLOP/s** ({block / peak:.0%} of the "
                f"square peak): the ceiling for the LLM sections if nothing but the matmuls cost time.")
