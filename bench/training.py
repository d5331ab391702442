"""LoRA training speed through the real loop (`llm.train.fit`): stage 1 text prompt, stage 2 code prompt."""
from __future__ import annotations

import statistics
import tempfile

import numpy as np
import torch

from bench import flops
from bench.common import Context, Section, Target, table
from llmrec.config import ExperimentConfig
from llmrec.llm import train as loop
from llmrec.llm.scoring import ScoringConfig, YesScorer
from llmrec.methods.click import ClickTask, add_lora

TRAINING_TARGET = 0.45


class RecordingTask(ClickTask):
    """A ClickTask that remembers the prompt lengths of every batch it collates (one batch = one step here)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_lengths: list[list[int]] = []

    def collate(self, rows):
        batch = super().collate(rows)
        self.batch_lengths.append([len(p) for p in batch["prompts"]])
        return batch


def lora_model(ctx: Context):
    """A copy of the backbone with fresh LoRA adapters (r 8, alpha 16, dropout 0.05, q_proj/v_proj)."""
    torch.manual_seed(0)
    return add_lora(ctx.model_copy(), ExperimentConfig())


def run(ctx: Context, sec: Section) -> None:
    b = ctx.budget
    _, tok = ctx.backbone
    model = lora_model(ctx)
    shape = flops.shape_of(model)
    peak = ctx.results.get("peak_gflops")
    scorer = YesScorer(model, tok, ScoringConfig())
    steps = b.train_steps + 1
    stages = [("stage 1 (text prompt, lr 1e-3)", ctx.prompts("text"), b.train_batch[0], 1e-3),
              ("stage 2 (titles + dot-decimal codes, lr 1e-4)", ctx.prompts("id", "dot_decimal"), b.train_batch[1], 1e-4)]
    sec.add(f"`llm.train.fit` on {ctx.split.name} train rows in the loop's own order, LoRA r=8, alpha 16, dropout "
            f"0.05 on q_proj and v_proj ({flops.describe(shape)}), AdamW, fp32; {steps} optimizer steps per stage, "
            f"the first untimed (warm-up); per-step numbers are medians over the other {b.train_steps}. "
            f"A step = batch building + forward + backward + AdamW update.", "")
    rows = []
    for name, prompts, batch, lr in stages:
        task = RecordingTask(model, scorer, prompts, ctx.split.train)
        cfg = loop.TrainConfig(lr=lr, batch_size=batch, max_steps=steps, eval_every=10**6, seed=2023,
                               log_every=10**6, patience=None)
        with tempfile.TemporaryDirectory() as tmp:
            result = loop.fit(task, len(ctx.split.train), None, None, cfg, tmp)
        secs = result.step_seconds[1:]
        lens = task.batch_lengths[1:len(result.step_seconds)]
        tok_s = [sum(ln) / s for ln, s in zip(lens, secs)]
        smp_s = [len(ln) / s for ln, s in zip(lens, secs)]
        gfs = [flops.training_flops(shape, ln) / s / 1e9 for ln, s in zip(lens, secs)]
        util = statistics.median(gfs) / peak if peak else None
        mean_len = float(np.mean([x for ln in lens for x in ln]))
        rows.append([name, batch, f"{mean_len:.0f}", f"{statistics.median(secs):.2f} ({min(secs):.3g}-{max(secs):.3g})",
                     f"{statistics.median(tok_s):.0f}", f"{statistics.median(smp_s):.2f}",
                     f"{statistics.median(gfs):.1f}", f"{util:.0%}" if util is not None else "n/a"])
        if util is not None:
            sec.targets.append(Target(f"LoRA training utilisation, {name.split(' (')[0]}",
                                      f">= {TRAINING_TARGET:.0%} of matmul peak",
                                      f"{util:.0%} ({statistics.median(gfs):.1f} / {peak:.1f} GFLOP/s)",
                                      util >= TRAINING_TARGET))
            ctx.results[f"train_util_{name.split(' (')[0]}"] = util
    sec.add(*table(["stage", "batch", "tokens/prompt", "s/step (min-max)", "tokens/s", "samples/s",
                    "useful GFLOP/s", "utilisation"], rows))
