"""The benchmark suite: its FLOP formulas against counted matmuls, its memory probe, and a smoke run end to end."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # `bench` is a top-level folder of the repository, not an installed package

from bench import flops  # noqa: E402
from bench.memory import run_child  # noqa: E402
from bench.run import SECTIONS  # noqa: E402


def _counted(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def test_flop_formulas_equal_the_matmuls_torch_counts():
    """Eager attention computes the full T x T square (the formulas count causal pairs only); frozen embeddings
    let autograd skip layer 0's gradients towards its input: both corrections are applied here, explicitly."""
    from llmrec.config import ExperimentConfig
    from llmrec.llm.backbones import load_backbone
    from llmrec.llm.scoring import ScoringConfig, YesScorer
    from llmrec.methods.click import add_lora

    model, tok = load_backbone("tiny")
    model.set_attn_implementation("eager")  # attention as plain matmuls, which FlopCounterMode sees
    T = 37
    ids = list(range(5, 5 + T))
    s = flops.shape_of(model)
    assert s.linear_params == sum(p.numel() for n, p in model.model.layers.named_parameters()
                                  if n.endswith("proj.weight"))
    square = s.n_layers * 4 * s.d_attn * T * T
    got = _counted(lambda: YesScorer(model, tok, ScoringConfig()).score([ids]))
    assert got == flops.scoring_flops(s, [T]) - flops.attention_flops(s, T) + square

    lora = add_lora(model, ExperimentConfig())
    lora.train()
    s = flops.shape_of(lora)
    assert s.lora_params == sum(p.numel() for n, p in lora.named_parameters() if "lora_" in n)
    got = _counted(lambda: YesScorer(lora, tok, ScoringConfig()).loss([ids], [1.0]).backward())
    cfg = model.config
    d, d_kv = cfg.hidden_size, cfg.num_key_value_heads * cfg.head_dim
    layer0_skipped = (2 * T * (d * d + 2 * d * d_kv)  # q, k, v: no gradient towards the frozen embeddings
                      + 2 * T * 2 * 8 * d  # LoRA A of q and v (r = 8): same
                      + 2 * s.d_attn * T * T)  # dK of layer 0: k_proj's input and weights are frozen
    expected = flops.training_flops(s, [T]) - 3 * flops.attention_flops(s, T) + 3 * square - layer0_skipped
    assert got == expected


def test_suffix_flops_of_an_empty_prefix_equal_scoring_flops():
    s = flops.Shape(n_layers=3, d_model=16, d_attn=16, linear_params=1000, lora_params=0)
    assert flops.suffix_flops(s, 0, [5, 9]) == pytest.approx(flops.scoring_flops(s, [5, 9]))
    # a prefix shared by 2 candidates costs once: cheaper than two full prompts, dearer than the suffixes alone
    both = flops.suffix_flops(s, 10, [5, 5])
    assert flops.scoring_flops(s, [5, 5]) < both < flops.scoring_flops(s, [15, 15])


def test_memory_probe_reports_the_child_not_the_parent():
    """300 MB touched by the child: the peak must not include this (large, torch-importing) test process."""
    code = "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096])"
    r = run_child([sys.executable, "-S", "-c", code], timeout=60)
    assert r.returncode == 0
    assert 300 * 2**20 <= r.maxrss_bytes < 380 * 2**20
    bad = run_child([sys.executable, "-S", "-c", "import sys; print('boom'); sys.exit(3)"], timeout=60)
    assert bad.returncode == 3 and "boom" in bad.tail
    slow = run_child([sys.executable, "-S", "-c", "import time; time.sleep(30)"], timeout=0.5)
    assert slow.returncode is None and slow.seconds < 10


def test_smoke_run_writes_every_section(tmp_path):
    from bench.report import HAND_WRITTEN

    out = tmp_path / "BENCHMARKS.md"
    hand = f"## Measured by hand\n{HAND_WRITTEN}\n\n| run | minutes |\n|---|---|\n| x | 12 |\n"
    out.write_text(f"# old report\n\n## Stale section\n\nold numbers 0.123\n\n{hand}\n## Another stale one\n\n0.456\n")
    run = subprocess.run([sys.executable, "-m", "bench.run", "--smoke", "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    text = out.read_text()
    for _, title, _ in SECTIONS:
        assert f"## {title}" in text
    for must in ("python -m bench.run --smoke", "torch threads", "RAM", "## Targets", "## How FLOPs are counted",
                 "GFLOP/s", "prompt tokens/s", "tokens per user code", "speed-up", "s/epoch", "self CPU ms",
                 "peak RSS"):
        assert must in text, must
    assert "Section failed" not in text
    # the hand-written section is carried over once, after the targets; the old measured ones are gone
    assert text.count(hand) == 1 and text.index("## Targets") < text.index(hand) < text.index("## How FLOPs")
    assert "0.123" not in text and "0.456" not in text and "Stale" not in text
    # every target line carries a verdict, and the console summary repeats them
    targets = text.split("## Targets")[1].split("## How FLOPs")[0]
    assert targets.count("| PASS |") + targets.count("| MISS |") >= 4
    assert ("PASS" in run.stdout) or ("MISS" in run.stdout)
