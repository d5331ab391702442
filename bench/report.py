"""BENCHMARKS.md: a hand-written introduction, then what this run measured, section by section.

Sections measured outside `make bench` (the ML-1M test-set scoring, what the serving numbers say) are written by
hand into BENCHMARKS.md under a heading followed by the `HAND_WRITTEN` marker line; a regenerated report carries
them over from the file it replaces, after the targets table, so `make bench` never drops them.
"""
from __future__ import annotations

import re
from pathlib import Path

from bench import flops
from bench.common import Section, table
from llmrec.paths import atomic_file

INTRO = """\
# llmrec benchmarks

How fast llmrec runs on the machine it is built for (2 CPU cores, no GPU) with the embedded SmolLM2-135M, measured
by `bench/` and written by it: every number below comes from one run of the command shown, and every ratio compares
two numbers measured in that same run. Timings are wall-clock medians of several repetitions (each section says how
many), taken after a warm-up, with the compared variants interleaved so that a change in machine load hits them
alike. On a shared or busy machine the absolute numbers drop; the ratios hold up better. Regenerate with
`make bench` (about 20 minutes) on a quiet machine before quoting anything. On a machine whose cores other jobs
keep busy, torch's default of one thread per core can be several times slower than `--threads 1` (a parallel
region waits for its slowest thread, which is often descheduled); the thread count used is in the table below.

Utilisation (model FLOPs utilisation) = useful FLOPs per second / the machine's own fp32 matmul peak measured in
the same run. The targets come from the project's "Performance" and "Serving" issues.
"""

FLOP_NOTES = """\
Counted by `bench/flops.py` (2 FLOPs per multiply-add; norms, activations, RoPE and softmax are not counted):

- **Linear layers**: 2 x N per token forward, N = the weights of every Linear inside the decoder blocks
  (q, k, v, o, gate, up, down); the embedding table and the LM head are not in N.
- **Attention**: a prompt of T tokens has T(T+1)/2 causal (query, key) pairs; QK^T and AV each cost 2 x d_attn per
  pair per layer, so 4 x n_layers x d_attn x T(T+1)/2 per prompt = on average 2 x n_layers x (T+1) x d_attn per
  token for the two products together (d_attn = heads x head_dim = 576 for SmolLM2). Padded and masked pairs are
  not counted, although the CPU kernel computes them.
- **Answer rows**: the last position projected onto the Yes and No rows, 2 x d_model x 2 per prompt. The
  full-vocabulary head at every position (`last_position_head=False`) is not useful work and is not counted, so
  both scoring paths are divided into the same useful FLOPs.
- **LoRA** (A: d_in -> r, B: r -> d_out on q_proj and v_proj): 2 x N_lora per token forward.
- **Training, frozen base**: forward 2N + backward activation gradients 2N (no weight gradients for frozen
  weights) = 4N per token; LoRA weights 6 x N_lora (forward, input gradient, weight gradient); attention backward
  = 2 x its forward, so 3 x the attention term; answer rows forward + input gradient. The AdamW update (over
  the LoRA weights, 0.46 M on SmolLM2) and batch building are in the measured time but not in the FLOPs.
  Autograd skips the gradients of layer 0 towards the frozen embeddings (q/k/v and LoRA A inputs, dK), which
  this formula counts: an overcount of about 0.3% for SmolLM2's 30 layers.
- `tests/bench` checks these formulas against torch's FlopCounterMode (eager attention, tiny model), exactly,
  with the square-vs-causal attention and the layer-0 corrections written out.
"""


HAND_WRITTEN = "<!-- written by hand: bench.report carries this section over when it regenerates the file -->"


def hand_written_sections(path: Path) -> list[str]:
    """The `## ` sections of an existing report whose heading is followed by the HAND_WRITTEN line, verbatim."""
    if not path.is_file():
        return []
    parts = re.split(r"(?m)^(?=## )", path.read_text(encoding="utf-8"))
    return [p.rstrip() + "\n" for p in parts if p.startswith("## ") and p.split("\n", 2)[1:2] == [HAND_WRITTEN]]


def render(command: str, date: str, hw: dict[str, str], sections: list[Section], total_seconds: float,
           smoke: bool, shape: flops.Shape | None, pending: list[str] | None = None,
           hand_written: list[str] | None = None) -> str:
    out = [INTRO]
    if pending:
        out.append(f"**Run in progress**: still to come: {', '.join(pending)}.\n")
    if smoke:
        out.append("**Smoke run** (`--smoke`): the tiny random backbone and synthetic data, one repetition. "
                   "These numbers only show that every section runs; they measure nothing.\n")
    out.append("## This run\n")
    out += table(["", ""], [["command", f"`{command}`"], ["date", date],
                            ["total time", f"{total_seconds / 60:.1f} min"]] + [[k, v] for k, v in hw.items()])
    out.append("")
    targets = [t for s in sections for t in s.targets]
    out.append("## Targets (from the Performance and Serving issues)\n")
    if targets:
        out += table(["target", "goal", "measured", "verdict"], [[t.name, t.goal, t.measured, t.verdict] for t in targets])
    else:
        out.append("No target was measured in this run.")
    failed = [s for s in sections if s.failed]
    if failed:
        out.append("")
        out.append("Sections that failed: " + ", ".join(f"{s.title} ({s.failed})" for s in failed) + ".")
    out.append("")
    out += hand_written or []
    out.append("## How FLOPs are counted\n")
    out.append(FLOP_NOTES)
    if shape is not None:
        out.append(f"Backbone in this run: {flops.describe(shape)}.\n")
    for s in sections:
        out.append(f"## {s.title}\n")
        if s.failed:
            out.append(f"**Section failed**: {s.failed}\n")
        out += s.lines
        out.append("")
        out.append(f"_Section time: {s.seconds:.0f} s._\n")
    return "\n".join(out).rstrip() + "\n"


def write(path: Path, text: str) -> None:
    """Write atomically: a half-written report never replaces the last complete one."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)
