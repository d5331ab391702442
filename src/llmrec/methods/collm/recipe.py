"""CoLLM end to end: collaborative model -> stage 1 TALLRec LoRA -> stage 2 mapping MLP with LoRA frozen."""
from __future__ import annotations

import torch

from llmrec.config import ExperimentConfig
from llmrec.data.types import ClickSplit
from llmrec.llm.backbones import load_backbone
from llmrec.llm.prompts import EMBED
from llmrec.methods.classic import recipe as classic
from llmrec.methods.click import (ClickPrompts, add_lora, load_tuned_backbone, save_adapter, scorer_for,
                                  stage1_from_run, stage_summary, test_metrics, train_stage)
from llmrec.methods.click_recommender import ClickRecommender
from llmrec.methods.collm.model import CoLLM
from llmrec.methods.tallrec.recipe import text_prompts
from llmrec.runs import Run
from llmrec.tracking import Tracker, scoped

TUNED_COLLAB = "collab_tuned.safetensors"
"""The collaborative model's weights after stage 2 when `collm.tune_collab` (the recommender reads them)."""


def embed_prompts(split: ClickSplit, tokenizer, cfg: ExperimentConfig) -> ClickPrompts:
    return ClickPrompts(split, tokenizer, "id", max_length=cfg.llm.max_length,
                        history_titles=cfg.llm.history_titles, user_slot=lambda u: EMBED, item_slot=lambda i: EMBED)


def build_collab(cfg: ExperimentConfig, split: ClickSplit):
    return classic.build(cfg, split.n_users, split.n_items, cfg.collm.collab_model)


def train(cfg: ExperimentConfig, split: ClickSplit, run: Run, tracker: Tracker | None = None) -> dict:
    torch.manual_seed(cfg.seed)
    cf = classic.train_model(cfg, split, run, build_collab(cfg, split), "collab",
                                   tracker=scoped(tracker, "collab"))
    out: dict = {"collab": {"model": cfg.collm.collab_model, "test": cf.test, "best_epoch": cf.best_epoch}}
    # distillation targets are computed before a stage trains: the teacher is the pre-trained model even when
    # stage 2 tunes it (`collm.tune_collab`)
    teacher = classic.ModelScorer(cf.model)
    model, tokenizer = load_backbone(cfg.llm.backbone, dtype=cfg.llm.dtype)
    torch.manual_seed(cfg.seed)
    model = add_lora(model, cfg)
    scorer = scorer_for(model, tokenizer, cfg)
    if cfg.stage1_from:
        out["stage1"] = stage1_from_run(model, cfg)
    else:
        out["stage1"] = stage_summary(train_stage("stage1", run, model, scorer, text_prompts(split, tokenizer, cfg),
                                                  split, cfg.stage1, cfg.seed, tracker, teacher))
    save_adapter(model, run)
    collm = CoLLM(model, cf.model, model.config.hidden_size).to(next(model.parameters()).device)
    collm.set_trainable(cfg.collm.tune_collab)
    scorer = scorer_for(model, tokenizer, cfg, slots=collm)
    prompts = embed_prompts(split, tokenizer, cfg)
    out["stage2"] = stage_summary(train_stage("stage2", run, collm, scorer, prompts, split, cfg.stage2, cfg.seed,
                                              tracker, teacher))
    run.save_tensors("mapping.safetensors", collm.mapping.state_dict())
    if cfg.collm.tune_collab:  # collab.safetensors keeps the pre-trained weights
        run.save_tensors(TUNED_COLLAB, collm.collab.state_dict())
    out["test"] = test_metrics(collm, scorer, prompts, split, cfg, run)
    return out


def load_recommender(run: Run, split: ClickSplit) -> ClickRecommender:
    """The tuned LLM with the mapped collaborative embeddings in its prompts; the collaborative model (tuned in
    stage 2 when `collm.tune_collab`) shortlists for `recommend`."""
    cfg = run.config
    model, tokenizer = load_tuned_backbone(run)
    cf = classic.load_model(run, split, "collab")
    if run.has(TUNED_COLLAB):
        cf.load_state_dict(run.load_tensors(TUNED_COLLAB))
    # on the backbone's device, as in training: the mapped vectors go straight into its input embeddings
    slots = CoLLM(model, cf, model.config.hidden_size).to(next(model.parameters()).device)
    slots.mapping.load_state_dict(run.load_tensors("mapping.safetensors"))
    slots.eval()
    return ClickRecommender(run, split, collab=classic.ModelScorer(cf),
                            llm=scorer_for(model, tokenizer, cfg, slots=slots), prompts=embed_prompts(split, tokenizer, cfg))
