"""CLLM4Rec end to end: `train_cllm4rec(experiment, split, run) -> metrics`.

    metrics = llmrec.experiment.train(make_config("cllm4rec"), "runs/cllm4rec-ml100k")   # -> train_cllm4rec
    rec = CLLM4Rec.load("runs/cllm4rec-ml100k"); rec.recommend(5, k=10)   # [(item, title, score)]

From the command line (`llmrec train cllm4rec`), `train(cfg, split, run)` trains into the run directory and
`recommend.load_recommender(run, split)` gives the `CLLM4Rec` of a finished run. The settings are the config's
`cllm4rec` section (`CLLM4RecConfig`); the backbone, its dtype and the seed are the experiment's `llm.backbone`,
`llm.dtype` and `seed`.

Stages, each one `llmrec.llm.train.fit` call with its own folder in the run (so a killed run re-run with the
same arguments resumes inside the stage it was in, and finished stages are only reloaded):
1. `pretrain-content/`: the content LM alone (content tables train, collaborative tables untouched);
2. `pretrain-alternate/`: collaborative and content batches in a shuffled order, each batch updating its own
   LM's tables with the other's held fixed by the mutual regulariser;
3. `finetune/`: the recommender on the collaborative side (content tables fixed), selected on validation
   Recall@20 + Recall@40 + NDCG@100 with early stopping;
then the test part is ranked with the selected weights (every test user, each metric with its 95% bootstrap
interval over users). metrics["curve"] is the learning curve: one row per validation (the untrained fine-tuning
state first) with the fine-tuning samples (users) and pre-training documents consumed so far, the training
seconds so far (pre-training + fine-tuning steps, evaluation excluded; x `threads` for CPU-seconds) and the
valid metrics. Optimiser: AdamW without weight decay (the official Adam)
and without warm-up; each stage's learning rate decays by cosine to 0 (the loop's schedule; the official code
keeps it constant). The run directory (through `llmrec.runs.Run`, no second run inside) holds config.yaml (the
identity), split/, the three stage folders, model.safetensors (both tables, LoRA adapters if any), log.txt and
metrics.json, written last. A larger `cllm4rec.patience` or `eval_every` continues a finished run's fine-tuning.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from llmrec.data.holdout import HoldoutSplit
from llmrec.metrics import METRIC_KS, SELECTION, holdout_metrics as ranking_metrics
from llmrec.errors import LlmrecError
from llmrec.llm.backbones import load_backbone
from llmrec.llm.train import TrainConfig, enable_gradient_checkpointing, fit, make_accelerator, predict_rows
from llmrec.methods.cllm4rec.config import CLLM4RecConfig
from llmrec.methods.cllm4rec.documents import collaborative_documents, content_documents
from llmrec.methods.cllm4rec.model import CLLM4RecModel, inject_lora
from llmrec.methods.cllm4rec.tasks import PretrainTask, RankTask, RecommendTask, document_batches
from llmrec.methods.cllm4rec.teacher import teacher_probs
from llmrec.methods.cllm4rec.tokens import IdVocab
from llmrec.tracking import Tracker, scoped

TOP_K = 100
"""Ranking depth scored at evaluation (the largest metric cut-off, NDCG@100)."""
MODEL_FILE = "model.safetensors"
"""Both ID tables (and LoRA adapters, if any) of the selected state: what inference adds to the backbone."""
PRETRAIN_CHECKPOINT_EVERY = 25
"""Pre-training has no evaluation (which is when `fit` checkpoints): checkpoint every this many steps so that a
killed run loses at most that much of a stage."""


def build_model(config: CLLM4RecConfig, n_users: int, n_items: int, device=None, *, backbone: str,
                dtype: str = "auto", seed: int = 2023):
    """(model, vocab, tokenizer): backbone (`llm.backbone`, `llm.dtype`) loaded, LoRA injected when asked, ID
    tables initialised from the seed (the experiment's)."""
    llm, tokenizer = load_backbone(backbone, dtype=dtype, device=device if device is not None else config.device)
    if config.lora:
        torch.manual_seed(seed)
        inject_lora(llm, config.lora_r, config.lora_alpha, config.lora_dropout, config.lora_targets)
    model = CLLM4RecModel(llm, n_users, n_items, config.init_std, seed=seed, item_head=config.item_head,
                          encoder=config.encoder)
    return model, IdVocab(tokenizer, model.vocab_size, n_users, n_items), tokenizer


def rank_users(model: CLLM4RecModel, vocab: IdVocab, users: np.ndarray, train_items: list[np.ndarray],
               config: CLLM4RecConfig, pad_id: int, seed: int, accelerator=None) -> np.ndarray:
    """[len(users), k] top item ids of each user (train items excluded), rows sharded over the processes."""
    task = RankTask(model, vocab, users, train_items, min(TOP_K, model.n_items), config.max_prompt_items, pad_id,
                    seed)
    scores = predict_rows(task, task.n_rows, config.eval_users_per_batch * task.k, accelerator)
    return task.topk(scores)


def _stage_config(seed: int, lr: float, epochs: float, batch_size: int, **kw) -> TrainConfig:
    return TrainConfig(lr=lr, weight_decay=0.0, warmup_steps=0, batch_size=batch_size, epochs=epochs, seed=seed, **kw)


def train_cllm4rec(experiment, split: HoldoutSplit, run, tracker: Tracker | None = None) -> dict:
    """Pre-train, fine-tune and test CLLM4Rec on a holdout split, into `run` (llmrec.runs.Run); returns the metrics
    (the caller, `llmrec.experiment.train`, finishes the run with them). `experiment`: the ExperimentConfig (its
    `cllm4rec` section, `llm.backbone`, `llm.dtype`, `seed`). `tracker` (llmrec.tracking) follows each stage under
    its folder's name (pretrain-content/, ..., finetune/)."""
    config, seed = experiment.cllm4rec, experiment.seed
    config.validate()  # a config built in code, not read through llmrec.config, is checked here
    acc = make_accelerator(find_unused_parameters=True)  # a content batch never touches the ID tables
    started = time.perf_counter()
    device = acc.device if config.device == "auto" else config.device
    model, vocab, tokenizer = build_model(config, split.n_users, split.n_items, device,
                                          backbone=experiment.llm.backbone, dtype=experiment.llm.dtype, seed=seed)
    if experiment.llm.gradient_checkpointing:
        enable_gradient_checkpointing(model.backbone)
    pad_id = tokenizer.pad_token_id
    train_items = split.user_items("train")
    stages = {}

    # 1-2. pre-training: content LM alone, then both LMs alternating
    content = content_documents(split, vocab, config.content_verb, config.max_text_tokens, config.max_content_docs,
                                seed)
    collab = collaborative_documents(split, vocab, config.max_doc_items, seed)
    for name, docs, epochs, sides in (("pretrain-content", content, config.content_epochs, (False, True)),
                                      ("pretrain-alternate", collab + content, config.alternate_epochs, (True, True))):
        if not epochs or not docs or config.encoder == "mean":  # the no-LLM control has no LM to pre-train
            continue
        batches = document_batches(docs, config.pretrain_batch_size, seed)
        model.set_trainable(*sides)
        task = PretrainTask(model, vocab, docs, batches, config.lambda_reg, pad_id, config.reg_reduction)
        result = fit(task, len(batches), None, None,
                     _stage_config(seed, config.pretrain_lr, epochs, 1, patience=None, eval_every=10 ** 9,
                                   checkpoint_every=PRETRAIN_CHECKPOINT_EVERY),
                     run.file(name), accelerator=acc, tracker=scoped(tracker, name))
        stages[name] = {"steps": result.steps, "documents": len(docs), "batches": result.samples_seen,
                        "documents_seen": round(result.samples_seen / len(batches) * len(docs)),
                        "train_seconds": round(result.train_seconds, 1),
                        "tokens_per_second": result.tokens_per_second,
                        "last_loss": result.train_log[-1]["loss"] if result.train_log else None}

    # 3. recommendation fine-tuning, selected on validation
    model.set_trainable(True, False)
    users = np.asarray([u for u in range(1, split.n_users) if len(train_items[u])], dtype=np.int64)
    valid_users = split.eval_users("valid")
    if not len(valid_users):
        raise LlmrecError(f"{split.name}: no user has validation items to select on")
    if config.max_valid_users is not None and len(valid_users) > config.max_valid_users:
        valid_users = np.sort(np.random.default_rng([seed, 5]).choice(valid_users, config.max_valid_users,
                                                                              replace=False))
    held_valid = split.user_items("valid")
    # every user once per draw; a fractional budget takes part of the last round (fit's epochs over the table)
    draws = math.ceil(config.finetune_epochs)
    teacher, teacher_report = None, None
    if config.teacher_weight > 0:
        teacher, teacher_report = teacher_probs(experiment, split, run, tracker=scoped(tracker, "teacher"))
    rec_task = RecommendTask(model, vocab, users, train_items, config.heldout_ratio, config.finetune_target,
                             config.max_prompt_items, config.lambda_reg if config.finetune_reg else 0.0, pad_id,
                             seed=seed, draws=draws, reg_reduction=config.reg_reduction,
                             lora_lr=config.finetune_lora_lr if config.lora else None,
                             teacher_probs=teacher, teacher_weight=config.teacher_weight)
    k = min(TOP_K, model.n_items)
    valid_task = RankTask(model, vocab, valid_users, train_items, k, config.max_prompt_items, pad_id, seed)

    def evaluate(scores):
        return ranking_metrics(valid_task.topk(scores), [held_valid[u] for u in valid_users])

    result = fit(rec_task, rec_task.n_rows, valid_task.n_rows, evaluate,
                 _stage_config(seed, config.finetune_lr, config.finetune_epochs / draws, config.finetune_batch_size,
                               eval_every=config.eval_every, patience=config.patience, eval_at_start=True,
                               eval_batch_size=config.eval_users_per_batch * k),
                 run.file("finetune"), selection_metric=SELECTION, eval_task=valid_task, accelerator=acc,
                 tracker=scoped(tracker, "finetune"))
    stages["finetune"] = {"steps": result.steps, "best_step": result.best_step, "stopped_early": result.stopped_early,
                          "train_seconds": round(result.train_seconds, 1), "tokens_per_second": result.tokens_per_second,
                          "history": result.history}

    # test: every user with test items, input = their train items
    test_users = split.eval_users("test")
    held_test = split.user_items("test")
    test = ranking_metrics(rank_users(model, vocab, test_users, train_items, config, pad_id, seed, acc),
                           [held_test[u] for u in test_users], intervals=True)
    metrics = {"valid": result.best_metrics, "valid_users": int(len(valid_users)), "test": test, "stages": stages,
               "curve": learning_curve(stages, result.history), "threads": torch.get_num_threads(),
               "seconds": round(time.perf_counter() - started, 1)}
    if teacher_report is not None:
        metrics["teacher"] = teacher_report
    run.save_tensors(MODEL_FILE, {n: p for n, p in model.named_parameters()
                                  if not n.startswith("backbone.") or "lora_" in n})  # on the main process only
    acc.wait_for_everyone()
    return metrics


def learning_curve(stages: dict, history: list[dict]) -> list[dict]:
    """One row per fine-tuning validation: samples and training seconds so far (pre-training included), valid
    Recall@20, Recall@40, NDCG@100."""
    pre = [v for name, v in stages.items() if name.startswith("pretrain")]
    pre_docs = sum(v["documents_seen"] for v in pre)
    pre_seconds = sum(v["train_seconds"] for v in pre)
    keys = [f"{kind}@{k}" for kind, k in METRIC_KS]
    return [{"step": row["step"], "samples": row["samples"], "pretrain_documents": pre_docs,
             "train_seconds": round(pre_seconds + row["train_seconds"], 1), **{k: row[k] for k in keys}}
            for row in history]


# ---------------------------------------------------------------------------------------------------------------
# `llmrec train cllm4rec` / `Recommender.from_pretrained` (see llmrec.methods.registry)

def train(cfg, split: HoldoutSplit, run, tracker: Tracker | None = None) -> dict:
    """`llmrec train cllm4rec`: `train_cllm4rec` into the run (resumable); metrics["test"] = test."""
    return train_cllm4rec(cfg, split, run, tracker=tracker)
