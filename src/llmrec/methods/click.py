"""The click-prediction LLM task shared by ICL, TALLRec, BinLLM and CoLLM.

A click row (user, target item, history, label) becomes a `ClickPrompt` through one packaged template; the LLM's
"Yes" logit at the last position is the score (llmrec.llm.scoring.YesScorer), trained with BCE through the shared
loop (llmrec.llm.train.fit). A method differs only in what fills the ID slots: nothing (text prompt), code text
(BinLLM) or one embedding position each (CoLLM), and in which parameters train.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from llmrec.config import ExperimentConfig, StageConfig
from llmrec.data.types import ClickSplit
from llmrec.errors import LlmrecError
from llmrec.llm import train as loop
from llmrec.llm.prompts import Prompt, PromptBuilder, template_for
from llmrec.llm.scoring import ScoringConfig, YesScorer
from llmrec.metrics import auc, frame_metrics, uauc
from llmrec.runs import Run
from llmrec.tracking import Tracker, scoped

SlotFn = Callable[[int], object]
"""id -> what fills an ID slot: code text (BinLLM) or `EMBED` (CoLLM)."""


@dataclass(frozen=True)
class ClickPrompt(Prompt):
    """A prompt that remembers its row: CoLLM's embedding hook reads the ids from here."""

    user_id: int = 0
    item_id: int = 0
    history: tuple[int, ...] = ()


def missing_title(item_id: int) -> str:
    """Documented fallback for items without a title: the prompt says 'item <id>'."""
    return f"item {item_id}"


class ClickPrompts:
    """Builds the prompts of click rows for one template kind ('text', 'id', 'ids_only')."""

    def __init__(self, split: ClickSplit, tokenizer, kind: str, *, max_length: int | None = 512,
                 history_titles: int = 10, user_slot: SlotFn | None = None, item_slot: SlotFn | None = None):
        self.kind = kind
        self.titles = split.titles()
        self.builder = PromptBuilder(template_for(kind, split.domain), tokenizer, max_length,
                                     max_titles=history_titles)
        self.history_titles = history_titles
        self.user_slot = user_slot if kind != "text" else None
        self.item_slot = item_slot if kind != "text" else None
        if kind != "text" and (user_slot is None or item_slot is None):
            raise ValueError(f"prompt kind {kind!r} needs user_slot and item_slot")

    def title(self, item: int) -> str:
        return self.titles.get(int(item)) or missing_title(int(item))

    def build(self, user: int, item: int, history) -> ClickPrompt:
        history = tuple(int(h) for h in history)
        shown = [self.titles.get(h, "") for h in history[-self.history_titles:]] if self.history_titles else []
        p = self.builder.build(shown, self.title(item),
                               None if self.user_slot is None else self.user_slot(int(user)),
                               None if self.item_slot is None else self.item_slot(int(item)))
        return ClickPrompt(**{f.name: getattr(p, f.name) for f in dataclasses.fields(Prompt)},
                           user_id=int(user), item_id=int(item), history=history)

    def for_frame(self, frame: pd.DataFrame) -> list[ClickPrompt]:
        return [self.build(u, i, h) for u, i, h in
                zip(frame["user_id"].to_numpy(), frame["item_id"].to_numpy(), frame["history"])]


class ClickTask:
    """llmrec.llm.train.Task over a click frame: prompts are built lazily, batches carry prompts and labels."""

    def __init__(self, module: torch.nn.Module, scorer: YesScorer, prompts: ClickPrompts, frame: pd.DataFrame,
                 sort_by_length: bool = False, targets: np.ndarray | None = None):
        """`targets`: the BCE target of each frame row (soft, `distillation_targets`); None: the labels."""
        self.module = module
        self.scorer = scorer
        self.prompts = prompts
        self.frame = frame.reset_index(drop=True)
        self.labels = self.frame["label"].to_numpy(np.float32) if targets is None else \
            np.asarray(targets, dtype=np.float32)
        if len(self.labels) != len(self.frame):
            raise ValueError(f"{len(self.labels)} targets for {len(self.frame)} rows")
        self._built: dict[int, ClickPrompt] = {}
        # Evaluation tables are scored in contiguous chunks: ordering rows by prompt length keeps padding low, and
        # rows sharing a prompt prefix (a user's rows with one history) side by side share its encoding.
        self.order = np.arange(len(self.frame))
        if sort_by_length:
            built = [self.prompt(r) for r in range(len(self.frame))]
            by_length = np.argsort(-np.array([len(p) for p in built]), kind="stable")
            first: dict = {}
            group = [first.setdefault(scorer.prefix_group(built[r]) or ("row", r), k) for k, r in enumerate(by_length)]
            self.order = by_length[np.argsort(group, kind="stable")]

    def prompt(self, row: int) -> ClickPrompt:
        if row not in self._built:
            r = self.frame.iloc[row]
            self._built[row] = self.prompts.build(r["user_id"], r["item_id"], r["history"])
        return self._built[row]

    def trainable_module(self) -> torch.nn.Module:
        return self.module

    def collate(self, rows: list[int]) -> dict:
        rows = [int(self.order[r]) for r in rows]
        prompts = [self.prompt(r) for r in rows]
        return {"prompts": prompts, "labels": torch.as_tensor(self.labels[rows]),
                "n_tokens": sum(len(p) for p in prompts)}

    def loss(self, batch: dict) -> torch.Tensor:
        return self.scorer.loss(batch["prompts"], batch["labels"])

    def predict(self, batch: dict) -> torch.Tensor:
        prompts = batch["prompts"]  # shared prefixes encoded once (YesScorer.rank; plain with eval.prefix_cache off)
        return torch.as_tensor(self.scorer.rank(prompts, batch_size=len(prompts)), device=batch["labels"].device)

    def unsort(self, scores: np.ndarray) -> np.ndarray:
        """Scores in the frame's row order (predict_rows returns them in this task's sorted order)."""
        out = np.empty_like(scores)
        out[self.order] = scores
        return out


def subset(frame: pd.DataFrame, rows: int | None, seed: int) -> pd.DataFrame:
    """A fixed random subset of `rows` rows (all when None or larger), in the original order."""
    if rows is None or rows >= len(frame):
        return frame.reset_index(drop=True)
    pick = np.sort(np.random.default_rng(seed).choice(len(frame), size=rows, replace=False))
    return frame.iloc[pick].reset_index(drop=True)


def scorer_for(model, tokenizer, cfg: ExperimentConfig, slots=None) -> YesScorer:
    """The run's scorer; `slots`: the module that fills embedding slots (CoLLM), whose `embed` and `prefix_key`
    become the scorer's hooks."""
    return YesScorer(model, tokenizer, ScoringConfig(score=cfg.llm.score, batch_size=cfg.eval.batch_size,
                                                     prefix_cache=cfg.eval.prefix_cache),
                     embed_fn=getattr(slots, "embed", None), prefix_key=getattr(slots, "prefix_key", None))


def add_lora(model, cfg: ExperimentConfig):
    """Wrap the backbone with fresh LoRA adapters (paper defaults: r 8, alpha 16, dropout 0.05, q/v); gradient
    checkpointing on when `llm.gradient_checkpointing`."""
    from peft import LoraConfig, get_peft_model

    lc = cfg.llm.lora
    model = get_peft_model(model, LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout,
                                             target_modules=list(lc.target_modules), task_type="CAUSAL_LM"))
    if cfg.llm.gradient_checkpointing:
        loop.enable_gradient_checkpointing(model)
    return model


def save_adapter(peft_model, run: Run) -> None:
    """The run's `adapter/` (peft), written through the run (atomically, main process only)."""
    run.write_dir("adapter", lambda tmp: peft_model.save_pretrained(str(tmp)))


def load_adapter(model, path: Path, trainable: bool = False):
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(path), is_trainable=trainable)


def load_tuned_backbone(run: Run, adapter: bool = True):
    """The run's backbone and tokenizer, with its saved LoRA adapter unless `adapter` is False (ICL)."""
    from llmrec.llm.backbones import load_backbone

    cfg = run.config
    model, tokenizer = load_backbone(cfg.llm.backbone, dtype=cfg.llm.dtype)
    return (load_adapter(model, run.file("adapter")) if adapter else model), tokenizer


def stage1_from_run(peft_model, cfg: ExperimentConfig) -> dict:
    """Load the adapter of the finished TALLRec run `cfg.stage1_from` into `peft_model`: it must have used the same
    backbone, LoRA settings and data, or stage 2 would start from something other than its stage 1."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from llmrec.runs import open_run

    run_dir = cfg.stage1_from
    source = open_run(run_dir)
    if source.config.method != "tallrec" or not source.finished:
        raise LlmrecError(f"stage1_from: {run_dir} is not a finished tallrec run")
    for what, a, b in (("llm.backbone", source.config.llm.backbone, cfg.llm.backbone),
                       ("llm.lora", source.config.llm.lora, cfg.llm.lora), ("data", source.config.data, cfg.data)):
        if a != b:
            raise LlmrecError(f"stage1_from: {run_dir} used a different {what} ({a} vs {b})")
    weights = source.file("adapter") / "adapter_model.safetensors"
    if not weights.exists():
        raise LlmrecError(f"stage1_from: {weights} is missing")
    result = set_peft_model_state_dict(peft_model, load_file(str(weights)))
    if getattr(result, "unexpected_keys", None):
        raise LlmrecError(f"stage1_from: {run_dir}'s adapter does not fit this LoRA config "
                          f"({len(result.unexpected_keys)} unexpected tensors)")
    return {"from": str(run_dir), **source.metrics.get("stage1", {})}


def stage_train_config(stage: StageConfig, seed: int, eval_batch_size: int) -> loop.TrainConfig:
    """The training loop's settings for one stage (the 'official' schedule brings the official constants)."""
    schedule = dict(loop.OFFICIAL_SCHEDULE) if stage.schedule == "official" else {}
    if stage.min_lr is not None:
        schedule["min_lr"] = stage.min_lr
    return loop.TrainConfig(lr=stage.lr, weight_decay=stage.weight_decay, batch_size=stage.batch_size,
                            grad_accum_steps=stage.grad_accum_steps, max_samples=stage.max_samples,
                            epochs=None if stage.max_samples else stage.epochs, warmup_ratio=stage.warmup_ratio,
                            eval_every=stage.eval_every, patience=stage.patience, seed=seed,
                            eval_batch_size=eval_batch_size, **schedule)


def platt_calibrate(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(a, b) minimising the BCE of sigmoid(a * logit + b) against the labels (Platt scaling: an unpenalised
    logistic regression on the one feature)."""
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression(C=np.inf).fit(np.asarray(logits, dtype=np.float64)[:, None], np.asarray(labels) > 0.5)
    return float(fit.coef_[0, 0]), float(fit.intercept_[0])


def distillation_targets(labels: np.ndarray, teacher_logits: np.ndarray, weight: float) -> np.ndarray:
    """(1 - weight) * label + weight * p, p the teacher's click probability, Platt-calibrated on these rows
    (StageConfig.teacher_weight)."""
    labels = np.asarray(labels, dtype=np.float64)
    a, b = platt_calibrate(teacher_logits, labels)
    p = 1.0 / (1.0 + np.exp(-(a * np.asarray(teacher_logits, dtype=np.float64) + b)))
    return ((1.0 - weight) * labels + weight * p).astype(np.float32)


def train_stage(name: str, run: Run, module: torch.nn.Module, scorer: YesScorer, prompts: ClickPrompts,
                split: ClickSplit, stage: StageConfig, seed: int, tracker: Tracker | None = None,
                teacher: Callable[[pd.DataFrame], np.ndarray] | None = None) -> loop.TrainResult:
    """One tuning stage on split.train, selected on valid_small AUC; resumable from `run/<name>_train/`;
    `tracker` (llmrec.tracking) follows it under `name/`. `teacher`: frame -> logits of the method's
    collaborative model, which `stage.teacher_weight` mixes into the targets."""
    valid = subset(split.valid_small, stage.eval_rows, seed) if stage.eval_rows != 0 else split.valid_small[:0]
    targets = None
    if stage.teacher_weight > 0:
        if teacher is None:
            raise LlmrecError(f"{name}.teacher_weight: this method has no collaborative model to learn from")
        targets = distillation_targets(split.train["label"].to_numpy(), teacher(split.train), stage.teacher_weight)
    train_task = ClickTask(module, scorer, prompts, split.train, targets=targets)
    eval_task = ClickTask(module, scorer, prompts, valid, sort_by_length=True)
    users, labels = valid["user_id"].to_numpy(), valid["label"].to_numpy()

    def evaluate(scores: np.ndarray) -> dict:
        s = eval_task.unsort(scores)
        return {"auc": auc(labels, s), "uauc": uauc(users, labels, s)}

    tc = stage_train_config(stage, seed, scorer.config.batch_size)
    result = loop.fit(train_task, len(split.train), len(valid) or None, evaluate if len(valid) else None, tc,
                      run.file(f"{name}_train"), selection_metric="auc", eval_task=eval_task,
                      tracker=scoped(tracker, name))
    run.log(f"{name}: best valid AUC {result.best_metrics.get('auc', float('nan')):.4f} at step "
            f"{result.best_step}/{result.steps}, {result.samples_seen} samples, {result.train_seconds:.0f} s")
    return result


def stage_summary(result: loop.TrainResult) -> dict:
    return {"best_step": result.best_step, "steps": result.steps, "samples": result.samples_seen,
            "valid": result.best_metrics, "train_seconds": round(result.train_seconds, 1),
            "train_tokens_per_second": result.tokens_per_second}


TEST_SCORES = "test_scores.parquet"
"""Per-row test scores of a run (user_id, item_id, label, warm, score): paired comparisons between methods read them."""


def save_test_scores(run: Run, frame: pd.DataFrame, scores: np.ndarray) -> None:
    out = frame[[c for c in ("user_id", "item_id", "label", "warm") if c in frame.columns]].copy()
    out["score"] = np.asarray(scores, dtype=np.float64)
    run.write(TEST_SCORES, lambda tmp: out.to_parquet(tmp, index=False))


def test_metrics(module: torch.nn.Module, scorer: YesScorer, prompts: ClickPrompts, split: ClickSplit,
                 cfg: ExperimentConfig, run: Run) -> dict:
    """AUC / UAUC (overall, warm, cold) with 95% user-bootstrap intervals on test (a fixed subset when
    eval.test_rows is set); the per-row scores are saved in the run."""
    test = subset(split.test, cfg.eval.test_rows, cfg.seed)
    task = ClickTask(module, scorer, prompts, test, sort_by_length=True)
    scores = task.unsort(loop.predict_rows(task, len(test), cfg.eval.batch_size))
    save_test_scores(run, test, scores)
    out = frame_metrics(test, scores, intervals=True)
    out["prompt_tokens_per_sample"] = float(np.mean([len(task.prompt(r)) for r in range(len(test))]))
    return out
