"""HTTP serving under load: `bench.serve_load` on an MF run trained here on the budget's split (seconds). The
LLM numbers (BinLLM on the embedded backbone) come from `python -m bench.serve_load --run RUN` on a trained run."""
from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common import Context, Section, Target


def run(ctx: Context, sec: Section) -> None:
    from bench.serve_load import measure
    from llmrec import experiment

    with tempfile.TemporaryDirectory(prefix="llmrec-serve-bench-") as tmp:
        out = Path(tmp) / "mf"
        cfg = experiment.make_config("mf", None, ["collab.epochs=1"])
        experiment.train(cfg, out, split=ctx.split)
        requests, seconds = (100, 5) if ctx.smoke else (2000, 20)
        lines, errors = measure(out, requests, seconds, pairs=8, pool_size=64 if ctx.smoke else 256)
    sec.add(*lines, "", "For an LLM run: `python -m bench.serve_load --run RUN` (see docs/serving.md).")
    sec.targets.append(Target("serving errors under load", "0", str(errors), errors == 0))
