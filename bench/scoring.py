"""LLM scoring speed with BinLLM's ID prompt (titles + dot-decimal codes), each speed switch on vs off."""
from __future__ import annotations

import numpy as np

from bench import flops
from bench.common import Context, Section, Target, measure, table
from llmrec.llm.scoring import ScoringConfig, YesScorer, length_grouped_batches, padding_fraction

SCORING_TARGET = 0.60


def run(ctx: Context, sec: Section) -> None:
    b = ctx.budget
    model, tok = ctx.backbone
    rows = ctx.test_rows(b.score_prompts)
    builder = ctx.prompts("id", "dot_decimal")
    prompts = builder.for_frame(rows)
    lengths = np.array([len(p) for p in prompts])
    n_tok = int(lengths.sum())
    shape = flops.shape_of(model)
    useful = flops.scoring_flops(shape, lengths)
    peak = ctx.results.get("peak_gflops")

    configs = {"all switches on": ScoringConfig(batch_size=b.score_batch),
               "last_position_head off": ScoringConfig(batch_size=b.score_batch, last_position_head=False),
               "group_by_length off": ScoringConfig(batch_size=b.score_batch, group_by_length=False)}
    scorers = {k: YesScorer(model, tok, c) for k, c in configs.items()}
    timings = measure({k: (lambda s=s: s.score(prompts)) for k, s in scorers.items()}, b.reps,
                      warmup={k: (lambda s=s: s.score(prompts[:b.score_batch])) for k, s in scorers.items()})

    on = timings["all switches on"]
    ctx.results["scoring_prompts"] = prompts
    ctx.results["scoring_tokens_per_s"] = n_tok / on.median
    in_order = [np.arange(i, min(i + b.score_batch, len(prompts))) for i in range(0, len(prompts), b.score_batch)]
    padding = {"all switches on": padding_fraction(lengths, length_grouped_batches(lengths, b.score_batch)),
               "last_position_head off": padding_fraction(lengths, length_grouped_batches(lengths, b.score_batch)),
               "group_by_length off": padding_fraction(lengths, in_order)}
    sec.add(f"{len(prompts)} prompts (BinLLM `id` template: last 10 history titles + 32-bit codes in dot-decimal "
            f"form, from random {ctx.split.name} test rows), {lengths.mean():.0f} tokens on average "
            f"(min {lengths.min()}, max {lengths.max()}), batch {b.score_batch}, `YesScorer.score`; "
            f"median of {b.reps} repetitions after a one-batch warm-up, the configurations interleaved.",
            f"Model: {flops.describe(shape)}; useful FLOPs of the set: {useful / 1e9:.1f} GFLOP "
            f"(see the FLOP formula section).", "")
    out_rows = []
    for k, t in timings.items():
        gfs = useful / t.median / 1e9
        diff = float(np.abs(np.asarray(t.output) - np.asarray(on.output)).max())
        out_rows.append([k, f"{t.median:.2f} ({t.spread()})", f"{n_tok / t.median:.0f}", f"{len(prompts) / t.median:.2f}",
                         f"{gfs:.1f}", f"{gfs / peak:.0%}" if peak else "n/a", f"{padding[k]:.1%}",
                         f"x{t.median / on.median:.2f}" if k != "all switches on" else "1",
                         f"{diff:.1e}" if k != "all switches on" else "-"])
    sec.add(*table(["configuration", "seconds (min-max)", "prompt tokens/s", "samples/s", "useful GFLOP/s",
                    "utilisation", "padding", "time vs all on", "max abs score diff vs all on"], out_rows))
    sec.add("", "`time vs all on` > 1 means switching that speed-up off makes scoring that much slower (the switch's "
                "speed-up). Utilisation = useful GFLOP/s / the square matmul peak measured in this run.")
    if peak:
        util = useful / on.median / 1e9 / peak
        ctx.results["scoring_util"] = util
        sec.targets.append(Target("LLM scoring utilisation", f">= {SCORING_TARGET:.0%} of matmul peak",
                                  f"{util:.0%} ({useful / on.median / 1e9:.1f} / {peak:.1f} GFLOP/s)",
                                  util >= SCORING_TARGET))
