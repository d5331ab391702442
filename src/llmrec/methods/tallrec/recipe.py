"""ICL: score the text-only prompt with the untuned backbone. TALLRec: LoRA-tune on it first (this is also
stage 1 of BinLLM and CoLLM)."""
from __future__ import annotations

import torch

from llmrec.config import ExperimentConfig
from llmrec.data.types import ClickSplit
from llmrec.llm.backbones import load_backbone
from llmrec.methods.click import (ClickPrompts, add_lora, load_tuned_backbone, save_adapter, scorer_for,
                                  stage_summary, test_metrics, train_stage)
from llmrec.methods.click_recommender import ClickRecommender
from llmrec.runs import Run
from llmrec.tracking import Tracker


def text_prompts(split: ClickSplit, tokenizer, cfg: ExperimentConfig) -> ClickPrompts:
    return ClickPrompts(split, tokenizer, "text", max_length=cfg.llm.max_length,
                        history_titles=cfg.llm.history_titles)


def train(cfg: ExperimentConfig, split: ClickSplit, run: Run, tracker: Tracker | None = None) -> dict:
    torch.manual_seed(cfg.seed)
    model, tokenizer = load_backbone(cfg.llm.backbone, dtype=cfg.llm.dtype)
    prompts = text_prompts(split, tokenizer, cfg)
    if cfg.method == "icl":
        return {"test": test_metrics(model, scorer_for(model, tokenizer, cfg), prompts, split, cfg, run)}
    model = add_lora(model, cfg)
    scorer = scorer_for(model, tokenizer, cfg)
    stage1 = train_stage("stage1", run, model, scorer, prompts, split, cfg.stage1, cfg.seed, tracker)
    save_adapter(model, run)
    return {"stage1": stage_summary(stage1), "test": test_metrics(model, scorer, prompts, split, cfg, run)}


def load_recommender(run: Run, split: ClickSplit) -> ClickRecommender:
    model, tokenizer = load_tuned_backbone(run, adapter=run.config.method != "icl")
    return ClickRecommender(run, split, llm=scorer_for(model, tokenizer, run.config),
                            prompts=text_prompts(split, tokenizer, run.config))
