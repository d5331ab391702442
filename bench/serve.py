"""HTTP serving under load: `bench.serve_load` on two runs trained here on the budget's split: MF (seconds) and
BinLLM on the budget's backbone (a few prompts of training: the load test measures speed, not quality)."""
from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common import Context, Section, Target


def runs(ctx: Context) -> list[tuple[str, str, list[str], int, float]]:
    """(name, method, overrides, requests, seconds per level) of each served run."""
    b = ctx.budget
    binllm = [f"llm.backbone={b.backbone}", "binllm.tuning=intuitive", "stage1.max_samples=16",
              "stage1.batch_size=8", "stage1.eval_rows=0", f"encoder.epochs={b.encoder_epochs}", "eval.test_rows=16"]
    if ctx.smoke:
        return [("MF", "mf", ["collab.epochs=1"], 100, 5), ("BinLLM", "binllm", binllm, 8, 5)]
    # an LLM request (8 prompts of ~140 tokens) takes seconds on 2 cores: a level ends on its time bound
    return [("MF", "mf", ["collab.epochs=1"], 2000, 20), ("BinLLM", "binllm", binllm, 1000, 60)]


def run(ctx: Context, sec: Section) -> None:
    from bench.serve_load import measure
    from llmrec import experiment

    errors = 0
    with tempfile.TemporaryDirectory(prefix="llmrec-serve-bench-") as tmp:
        for name, method, overrides, requests, seconds in runs(ctx):
            out = Path(tmp) / method
            experiment.train(experiment.make_config(method, None, overrides), out, split=ctx.split)
            result = measure(out, requests, seconds, pairs=8, pool_size=64 if ctx.smoke else 256)
            sec.add(f"**{name}** (`{method}` trained here: {' '.join(overrides)})", "", *result.lines, "")
            errors += result.errors
            if result.offline_tokens_per_s:  # the LLM run
                ratio = result.batching_ratio
                sec.targets.append(Target("LLM serving: batching on vs off at concurrency 32", ">= x3",
                                          "-" if ratio is None else f"x{ratio:.2f}",
                                          None if ratio is None else ratio >= 3))
                share = result.served_tokens_per_s / result.offline_tokens_per_s
                sec.targets.append(Target("LLM serving: prompt tokens/s vs the offline scorer", ">= 80%",
                                          f"{share:.0%} ({result.served_tokens_per_s:.0f} / "
                                          f"{result.offline_tokens_per_s:.0f})", share >= 0.8))
    sec.add("For a trained run: `python -m bench.serve_load --run RUN` (see docs/serving.md).")
    sec.targets.append(Target("serving errors under load", "0", str(errors), errors == 0))
