"""Test metrics of a BinLLM run's best checkpoint so far, while (or after) its training was stopped short.

    python -m bench.score_checkpoint RUN [--stage stage2]

Loads the stage's selected LoRA weights (`RUN/<stage>_train/best/trainable.safetensors`) onto the run's backbone,
scores the whole test set with the run's code prompts (shared prefixes encoded once), saves the per-row scores as
`RUN/test_scores.parquet` and the metrics, with 95% user-bootstrap intervals, as `RUN/checkpoint_test.json`. The
run itself stays unfinished: re-running its train command continues the training.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from llmrec.data.types import ClickSplit
from llmrec.llm.backbones import load_backbone
from llmrec.llm.train import load_trainable
from llmrec.methods.binllm.recipe import Codes, code_prompts
from llmrec.methods.click import add_lora, scorer_for, test_metrics
from llmrec.paths import atomic_file
from llmrec.runs import Run


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--stage", default="stage2")
    args = ap.parse_args(argv)
    run = Run(args.run)
    cfg = run.config
    if cfg.method != "binllm":
        raise SystemExit(f"{args.run}: a {cfg.method} run; this scores BinLLM checkpoints")
    best = run.file(f"{args.stage}_train") / "best"
    split = ClickSplit.load(run.file("split"))
    model, tokenizer = load_backbone(cfg.llm.backbone, dtype=cfg.llm.dtype)
    model = add_lora(model, cfg)
    load_trainable(model, best / "trainable.safetensors")
    model.eval()
    prompts = code_prompts(split, tokenizer, cfg, Codes.load(run, cfg.binllm.code_format))
    started = time.perf_counter()
    with torch.no_grad():
        metrics = test_metrics(model, scorer_for(model, tokenizer, cfg), prompts, split, cfg, run)
    metrics["scoring_seconds"] = round(time.perf_counter() - started, 1)
    metrics["torch_threads"] = torch.get_num_threads()
    metrics["checkpoint"] = json.loads((best / "best.json").read_text())
    with atomic_file(run.file("checkpoint_test.json")) as tmp:
        Path(tmp).write_text(json.dumps(metrics, indent=1))
    print(json.dumps({k: v for k, v in metrics.items() if k != "checkpoint"}, indent=1))
    return metrics


if __name__ == "__main__":
    main()
