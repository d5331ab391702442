"""BinLLM end to end: train the text-like encoder, write its codes into the prompt, tune the LLM.

two_step (paper): stage 1 = TALLRec (LoRA on the text-only prompt), stage 2 = LoRA continues on the prompt with
codes, encoder frozen. intuitive (ablation): one stage with codes from the start, using the stage 1 settings.
Prompt variants: 'id' (titles + codes, BinLLM), 'ids_only' (BinLLM-IO), 'text' (BinLLM-TO: stage 1 only).
"""
from __future__ import annotations

import numpy as np
import torch

from llmrec.config import ExperimentConfig
from llmrec.data.types import ClickSplit
from llmrec.errors import LlmrecError
from llmrec.llm.backbones import load_backbone
from llmrec.methods.classic import recipe as classic
from llmrec.methods.binllm.model import BinaryEncoder, bits_to_text
from llmrec.methods.click import (ClickPrompts, add_lora, load_tuned_backbone, save_adapter, scorer_for,
                                  stage1_from_run, stage_summary, test_metrics, train_stage)
from llmrec.methods.click_recommender import ClickRecommender
from llmrec.methods.tallrec.recipe import text_prompts
from llmrec.runs import Run
from llmrec.tracking import Tracker, scoped

class Codes:
    """The encoder's binary codes of every user and item, and their text form."""

    def __init__(self, user_bits: np.ndarray, item_bits: np.ndarray, code_format: str):
        self.user_bits, self.item_bits, self.code_format = user_bits, item_bits, code_format
        self._cache: dict[tuple[str, int], str] = {}

    def _text(self, kind: str, bits: np.ndarray, i: int) -> str:
        if not 0 <= i < len(bits):
            raise LlmrecError(f"{kind} id {i} has no code (known ids: 0..{len(bits) - 1})")
        key = (kind, i)
        if key not in self._cache:
            self._cache[key] = bits_to_text(bits[i], self.code_format)
        return self._cache[key]

    def user(self, u: int) -> str:
        return self._text("user", self.user_bits, u)

    def item(self, i: int) -> str:
        return self._text("item", self.item_bits, i)

    @classmethod
    def load(cls, run: Run, code_format: str) -> "Codes":
        t = run.load_tensors("codes.safetensors")
        return cls(t["user_bits"].numpy(), t["item_bits"].numpy(), code_format)


def train_codes(cfg: ExperimentConfig, split: ClickSplit, run: Run,
                tracker: Tracker | None = None) -> tuple[Codes, dict, BinaryEncoder]:
    """Train the text-like encoder (resumable) and cache its codes in the run; `tracker` follows it under
    encoder/. Returns the codes, a summary and the trained encoder (eval mode: pure binary codes)."""
    torch.manual_seed(cfg.seed)
    encoder = BinaryEncoder(split.n_users, split.n_items, cfg.encoder)
    result = classic.train_model(cfg, split, run, encoder, "encoder", tracker=scoped(tracker, "encoder"))
    user_bits, item_bits = result.model.all_codes()
    run.save_tensors("codes.safetensors", {"user_bits": torch.from_numpy(user_bits),
                                           "item_bits": torch.from_numpy(item_bits)})
    summary = {"test": result.test, "best_epoch": result.best_epoch, "best_valid_auc": result.best_valid_auc,
               "seconds": round(result.seconds, 1)}
    return Codes(user_bits, item_bits, cfg.binllm.code_format), summary, result.model


def code_prompts(split: ClickSplit, tokenizer, cfg: ExperimentConfig, codes: Codes) -> ClickPrompts:
    return ClickPrompts(split, tokenizer, cfg.binllm.prompt, max_length=cfg.llm.max_length,
                        history_titles=cfg.llm.history_titles, user_slot=codes.user, item_slot=codes.item)


def train(cfg: ExperimentConfig, split: ClickSplit, run: Run, tracker: Tracker | None = None) -> dict:
    codes, encoder_summary, encoder = train_codes(cfg, split, run, tracker)
    teacher = classic.ModelScorer(encoder)  # the codes' own inner product: what `teacher_weight` distils
    out: dict = {"encoder": encoder_summary}
    model, tokenizer = load_backbone(cfg.llm.backbone, dtype=cfg.llm.dtype)
    torch.manual_seed(cfg.seed)
    model = add_lora(model, cfg)
    scorer = scorer_for(model, tokenizer, cfg)
    prompts = text_prompts(split, tokenizer, cfg)
    if cfg.stage1_from and cfg.binllm.tuning == "two_step":
        out["stage1"] = stage1_from_run(model, cfg)
    elif cfg.binllm.tuning == "two_step" or cfg.binllm.prompt == "text":
        out["stage1"] = stage_summary(train_stage("stage1", run, model, scorer, prompts, split, cfg.stage1, cfg.seed,
                                                  tracker, teacher))
    if cfg.binllm.prompt != "text":
        prompts = code_prompts(split, tokenizer, cfg, codes)
        stage = cfg.stage2 if cfg.binllm.tuning == "two_step" else cfg.stage1
        out["stage2"] = stage_summary(train_stage("stage2", run, model, scorer, prompts, split, stage, cfg.seed,
                                                  tracker, teacher))
    save_adapter(model, run)
    out["test"] = test_metrics(model, scorer, prompts, split, cfg, run)
    return out


def load_recommender(run: Run, split: ClickSplit) -> ClickRecommender:
    """The tuned LLM over the run's prompts; with codes, the encoder shortlists for `recommend`."""
    cfg = run.config
    model, tokenizer = load_tuned_backbone(run)
    scorer = scorer_for(model, tokenizer, cfg)
    if cfg.binllm.prompt == "text":
        return ClickRecommender(run, split, llm=scorer, prompts=text_prompts(split, tokenizer, cfg))
    encoder = classic.load_model(run, split, "encoder")
    prompts = code_prompts(split, tokenizer, cfg, Codes.load(run, cfg.binllm.code_format))
    return ClickRecommender(run, split, collab=classic.ModelScorer(encoder), llm=scorer, prompts=prompts)
