"""What every section shares: the budget (full or smoke), timing by medians, results, and lazily built fixtures."""
from __future__ import annotations

import copy
import functools
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch


@dataclass(frozen=True)
class Budget:
    """How much each section measures. `full()` fits `make bench` in about 20 minutes on 2 cores; `smoke()` runs
    every code path on the tiny backbone in seconds (its numbers mean nothing)."""

    backbone: str
    """Backbone name for the LLM sections (`load_backbone`)."""
    data: str
    """'ml-100k' (the click split of the embedded data) or 'synthetic' (a small generated split)."""
    reps: int
    """Repetitions of each timed measurement (the median is reported)."""
    matmul_n: int
    """Side of the square fp32 matmul that measures the machine's peak."""
    llm_rows: int
    """M of the LLM-shaped matmuls: batch x prompt tokens (16 x 200 for the real model)."""
    score_prompts: int
    """Prompts scored per repetition (test rows of the click split)."""
    score_batch: int
    """Prompts per forward pass while scoring."""
    token_rows: int
    """Click rows whose prompts are tokenised for the prompt-length table."""
    train_steps: int
    """Timed optimizer steps per LoRA stage (one more, untimed, warms up)."""
    train_batch: tuple[int, int]
    """Micro-batch of stage 1 and stage 2 (the papers: 16 and 4)."""
    rank_candidates: tuple[int, ...]
    """Candidate counts C for the prefix-cache ranking comparison."""
    rank_independent_cap: int
    """At most this many candidates are scored independently; beyond it the independent time is extrapolated
    linearly (each independent prompt costs the same, whatever C is)."""
    lcrec_users: int
    """Users decoded together by LC-Rec's beam search (one batch)."""
    lcrec_beams: int
    """Beam width (the paper: 20)."""
    cllm4rec_users: int
    """Users ranked over the full catalogue by CLLM4Rec."""
    collab_epochs: int
    """Epochs timed per collaborative model (median seconds per epoch)."""
    profile_batch: int
    """Prompts in the profiled scoring batch and training step."""
    encoder_epochs: int
    """Epochs of BinLLM's encoder trained to get real codes for the prompts."""

    @classmethod
    def full(cls) -> "Budget":
        return cls(backbone="smollm2-135m", data="ml-100k", reps=3, matmul_n=2048, llm_rows=16 * 200,
                   score_prompts=32, score_batch=16, token_rows=2000, train_steps=3, train_batch=(16, 4),
                   rank_candidates=(20, 100, 500), rank_independent_cap=100, lcrec_users=2, lcrec_beams=20,
                   cllm4rec_users=32, collab_epochs=3, profile_batch=16, encoder_epochs=5)

    @classmethod
    def smoke(cls) -> "Budget":
        return cls(backbone="tiny", data="synthetic", reps=1, matmul_n=128, llm_rows=64, score_prompts=8,
                   score_batch=4, token_rows=40, train_steps=1, train_batch=(4, 2), rank_candidates=(4, 8),
                   rank_independent_cap=6, lcrec_users=2, lcrec_beams=4, cllm4rec_users=4, collab_epochs=1,
                   profile_batch=4, encoder_epochs=1)


# ------------------------------------------------------------------------------------------------ results

@dataclass
class Target:
    """One of the issue's goals, checked against a number measured in this run."""

    name: str
    goal: str
    """The goal as the issue states it, e.g. '>= 60% of matmul peak'."""
    measured: str
    """The measured value as text, e.g. '23% (7.1 / 31 GFLOP/s)'."""
    ok: bool | None
    """True PASS, False MISS, None not measured."""

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: "n/a"}[self.ok]


@dataclass
class Section:
    """One block of BENCHMARKS.md."""

    key: str
    title: str
    lines: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    seconds: float = 0.0
    """Wall time the section took (setup included)."""
    failed: str | None = None
    """The error that stopped the section, if one did."""

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)


def table(header: list[str], rows: list[list]) -> list[str]:
    """A markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


# ------------------------------------------------------------------------------------------------ timing

@dataclass
class Timing:
    """Wall seconds of each repetition and the output of the last one."""

    seconds: list[float]
    output: object = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def spread(self) -> str:
        """'min-max' of the repetitions, to show how noisy they were."""
        return f"{min(self.seconds):.3g}-{max(self.seconds):.3g}"


def measure(fns: dict[str, Callable[[], object]], reps: int,
            warmup: bool | dict[str, Callable[[], object]] = True) -> dict[str, Timing]:
    """Run each callable `reps` times, interleaved (a load change on a shared machine hits all of them alike).
    Before that, untimed: each callable once (`warmup=True`), or the given cheaper warm-up callables (a dict,
    e.g. the same code path on a small input), or nothing (False). Returns wall-clock timings by name."""
    out = {k: Timing([]) for k in fns}
    if warmup is True:
        warmup = fns
    for fn in (warmup or {}).values():
        fn()
    for _ in range(reps):
        for k, fn in fns.items():
            t = time.perf_counter()
            result = fn()
            out[k].seconds.append(time.perf_counter() - t)
            out[k].output = result
    return out


def fmt_s(seconds: float) -> str:
    return f"{seconds:.3g} s" if seconds >= 0.01 else f"{seconds * 1e3:.3g} ms"


# ------------------------------------------------------------------------------------------------ machine

def hardware() -> dict[str, str]:
    """CPU model, cores, torch threads, RAM, load average, library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass
    import transformers

    flags = ""
    try:
        text = open("/proc/cpuinfo").read()
        flags = ", ".join(f for f in ("avx2", "fma", "avx512f", "amx_tile") if f" {f} " in text)
    except OSError:
        pass
    return {"CPU": cpu, "SIMD": flags or "unknown", "cores (os.cpu_count)": str(os.cpu_count()),
            "torch threads": str(torch.get_num_threads()), "RAM": ram, "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "load average (1/5/15 min) at start": " / ".join(f"{x:.2f}" for x in os.getloadavg())}


# ------------------------------------------------------------------------------------------------ fixtures

def synthetic_split(n_users: int = 60, n_items: int = 40, seed: int = 0):
    """A small click split through the real data path (llmrec.data.synthetic + click_split): two taste groups."""
    from llmrec.data.splits import click_split
    from llmrec.data.synthetic import synthetic_dataset

    return click_split(synthetic_dataset(n_users, n_items, seed=seed), cuts=(0.7, 0.85), threshold=4.0,
                       max_history=20)


class Context:
    """Shared, lazily built inputs: the click split, the backbone, BinLLM codes and prompt builders."""

    def __init__(self, budget: Budget, smoke: bool, full_demo: bool = False):
        self.budget = budget
        self.smoke = smoke
        self.full_demo = full_demo
        self.results: dict[str, object] = {}
        """Numbers one section hands to another (e.g. the matmul peak to the utilisation figures)."""

    @functools.cached_property
    def split(self):
        if self.budget.data == "synthetic":
            return synthetic_split()
        from llmrec.data import get_click_split

        return get_click_split(self.budget.data)

    @functools.cached_property
    def backbone(self):
        """(model, tokenizer) of the budget's backbone in eval mode; sections that modify it take a copy."""
        from llmrec.llm.backbones import load_backbone

        torch.manual_seed(0)
        return load_backbone(self.budget.backbone, device="cpu")

    def model_copy(self):
        return copy.deepcopy(self.backbone[0])

    @functools.cached_property
    def codes_bits(self):
        """BinLLM encoder codes (user_bits, item_bits) from a short training run on the split."""
        from llmrec.collab import trainer
        from llmrec.methods.binllm.model import BinaryEncoder, EncoderConfig

        torch.manual_seed(0)
        enc = BinaryEncoder(self.split.n_users, self.split.n_items, EncoderConfig())
        trainer.fit(enc, self.split.train, self.split.valid_small, None,
                    trainer.TrainConfig(epochs=self.budget.encoder_epochs, patience=10**6, progress=False,
                                        batch_size=2048))
        return enc.all_codes()

    def codes(self, code_format: str = "dot_decimal"):
        from llmrec.methods.binllm.recipe import Codes

        user_bits, item_bits = self.codes_bits
        return Codes(user_bits, item_bits, code_format)

    def prompts(self, kind: str = "id", code_format: str = "dot_decimal", tokenizer=None):
        """ClickPrompts of the split: 'text' (titles only) or 'id' (titles + BinLLM codes in `code_format`)."""
        from llmrec.methods.click import ClickPrompts

        tok = tokenizer or self.backbone[1]
        if kind == "text":
            return ClickPrompts(self.split, tok, "text", max_length=512)
        codes = self.codes(code_format)
        return ClickPrompts(self.split, tok, kind, max_length=512, user_slot=codes.user, item_slot=codes.item)

    def test_rows(self, n: int, seed: int = 0):
        """n random rows of the test frame (all when fewer), in random order (as a user's file would be)."""
        frame = self.split.test
        pick = np.random.default_rng(seed).permutation(len(frame))[:n]
        return frame.iloc[pick].reset_index(drop=True)
