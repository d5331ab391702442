"""Classic collaborative models (MF, LightGCN, SASRec, DIN) and BinMF (BinLLM's encoder alone) as methods."""
from __future__ import annotations

import json

from llmrec import collab
from llmrec.collab import trainer
from llmrec.config import ExperimentConfig
from llmrec.data.types import ClickSplit
from llmrec.llm.backbones import resolve_device
from llmrec.methods.binllm.model import BinaryEncoder
from llmrec.methods.click import save_test_scores, subset
from llmrec.methods.click_recommender import ClickRecommender
from llmrec.metrics import frame_metrics
from llmrec.runs import Run
from llmrec.tracking import Tracker, scoped


def load_model(run: Run, split: ClickSplit, name: str):
    """A trained collaborative model (or BinLLM encoder) saved by `train_model` under `name`, in eval mode."""
    desc = run.load_json(f"{name}.json")["description"]
    if desc.get("class") == "BinaryEncoder":
        model = BinaryEncoder(split.n_users, split.n_items, run.config.encoder)
    else:
        model = collab.from_description(desc)
        model.prepare(split.train)
    model.load_state_dict(run.load_tensors(f"{name}.safetensors"))
    return model.eval()


class ModelScorer:
    """frame (user_id, item_id, history) -> scores of a collaborative `model`, for ClickRecommender."""

    def __init__(self, model):
        self.model = model

    def __call__(self, frame):
        return trainer.predict(self.model, frame)


def load_recommender(run: Run, split: ClickSplit) -> ClickRecommender:
    return ClickRecommender(run, split, collab=ModelScorer(load_model(run, split, "model")))


def build(cfg: ExperimentConfig, n_users: int, n_items: int, name: str | None = None):
    """A fresh model `name` (default: the method's): binmf from the `encoder` section, the others from `collab`."""
    name = name or cfg.method
    if name == "binmf":
        return BinaryEncoder(n_users, n_items, cfg.encoder)
    return collab.build_model(name, n_users, n_items, **cfg.collab.overrides)


def train_model(cfg: ExperimentConfig, split: ClickSplit, run: Run, model, name: str,
                tracker: Tracker | None = None) -> trainer.TrainResult:
    """Fit a collaborative model (or the BinLLM encoder) with checkpoints in the run; save its best weights.
    It trains on the process's device (`resolve_device("auto")`: its GPU when there is one, else the CPU, where
    results are as before). `tracker` (llmrec.tracking, already under the caller's prefix) follows every epoch."""
    model.to(resolve_device("auto"))
    c = cfg.collab
    enc = getattr(model, "config", None)
    batch_size = enc.batch_size if isinstance(model, BinaryEncoder) else c.batch_size
    epochs = enc.epochs if isinstance(model, BinaryEncoder) else c.epochs
    patience = enc.patience if isinstance(model, BinaryEncoder) else c.patience
    tc = trainer.TrainConfig(lr=c.lr if not isinstance(model, BinaryEncoder) else None,
                             weight_decay=c.weight_decay if not isinstance(model, BinaryEncoder) else None,
                             batch_size=batch_size, epochs=epochs, patience=patience, seed=cfg.seed)
    result = trainer.fit(model, split.train, split.part(c.valid_part), split.test, tc,
                         checkpoint_dir=run.file(f"{name}_ckpt"), tracker=tracker)
    run.save_tensors(f"{name}.safetensors", result.state_dict,
                     metadata={"description": json.dumps(result.description, default=str)})
    run.save_json(f"{name}.json", {"description": result.description, "best_epoch": result.best_epoch,
                                    "history": result.history})
    return result


def train(cfg: ExperimentConfig, split: ClickSplit, run: Run, tracker: Tracker | None = None) -> dict:
    import torch

    torch.manual_seed(cfg.seed)
    model = build(cfg, split.n_users, split.n_items)
    result = train_model(cfg, split, run, model, "model", tracker=scoped(tracker, "collab"))
    # the same (fixed subset of) test rows the LLM methods score, for a fair table, with intervals
    rows = subset(split.test, cfg.eval.test_rows, cfg.seed)
    scores = trainer.predict(result.model, rows)
    save_test_scores(run, rows, scores)
    test = frame_metrics(rows, scores, intervals=True)
    return {"test": test, "best_epoch": result.best_epoch, "best_valid_auc": result.best_valid_auc,
            "epochs": result.epochs_run, "seconds_per_epoch": round(result.seconds_per_epoch, 3)}
