"""The one early-stopping epoch loop of the classic models and of the RQ-VAE indexer (docs/architecture.md).

A model brings two functions, `train_epoch(epoch) -> {"loss": ..., other numbers}` (one pass over its training
data, 1-based epoch) and `evaluate() -> {metric: value}` (validation); the loop does the rest:

    result = run_epochs(model, optimizer, train_epoch, evaluate, epochs=200, metric="ndcg@10", patience=20,
                        samples_per_epoch=len(users), checkpoint=run_dir / "last.safetensors")

- epochs 1..`epochs`; `evaluate` after every `eval_every`-th epoch and after the last one;
- the weights of the best evaluation are kept: strictly better than every earlier one (`higher_is_better`), so
  the first of equal values wins and a NaN never does;
- stop after `patience` evaluations without gain (None: never early);
- after every epoch, one checkpoint file (`llmrec.checkpoint`): weights, best weights, optimizer,
  scheduler, CPU RNG, history and the model's own resumable state (`extra_state` / `load_extra_state`, JSON).
  Called again with the same arguments, the loop continues from it with the same batches, so a killed run ends
  as an uninterrupted one; a checkpoint written with another `fingerprint` is refused;
- the tracker gets train_loss (and the other numbers of `train_epoch`), lr, samples_per_s every epoch and
  valid_<metric> at evaluations; tqdm shows the epochs.

The model's state ends holding the best weights, in eval mode. The loop calls no random function itself: with
`seed` it seeds torch once at a fresh start (not on resume, where the checkpoint restores the RNG).

Under `accelerate launch` every process runs the loop on its own copy; only the main process writes the
checkpoint, and at the end every process takes the main process's best weights (on CUDA the copies can drift
apart: embedding backward is not deterministic), so an LLM stage built on the model sees one model everywhere.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from llmrec.checkpoint import load_training_state, read_state, save_training_state
from llmrec.errors import LlmrecError
from llmrec.runs import main_process
from llmrec.tracking import Tracker, scoped


@dataclass
class LoopResult:
    best_epoch: int
    """1-based epoch of the kept weights (0: no evaluation gained over the start)."""
    best_value: float
    """The selection metric at best_epoch (-inf / inf when none)."""
    best_metrics: dict
    """Every validation metric at best_epoch, without the valid_ prefix."""
    best_state: dict[str, torch.Tensor]
    """The kept weights (also loaded into the model)."""
    history: list[dict] = field(default_factory=list)
    """One record per epoch: epoch, samples, train_seconds (so far), the numbers of train_epoch, valid_<metric>
    at evaluations, seconds (the epoch's wall time, validation included)."""
    stopped_early: bool = False
    """True when patience ran out."""
    seconds: float = 0.0
    """Wall time of training and validation over all sessions (a resumed run adds up)."""


def _copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _cuda_index(model: torch.nn.Module) -> int | None:
    p = next(model.parameters(), None)
    return (p.device.index or 0) if p is not None and p.device.type == "cuda" else None


def _rng_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The RNG states dropout and sampling draw from: the CPU generator, and the model's GPU one when it is on
    CUDA (where `rand_like` and dropout draw), so a resumed GPU run continues the same random stream."""
    state = {"torch": torch.get_rng_state()}
    if _cuda_index(model) is not None:
        state["cuda"] = torch.cuda.get_rng_state(_cuda_index(model))
    return state


def _take_main_weights(model: torch.nn.Module) -> bool:
    """In a multi-process launch, load the main process's weights into `model` on every process; False alone."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) < 2:
        return False
    import torch.distributed as dist
    from accelerate import PartialState

    if not dist.is_initialized():
        PartialState()  # the launch's process group (the Accelerator of a later LLM stage reuses it)
    sent = [{k: v.detach().cpu() for k, v in model.state_dict().items()} if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(sent, src=0)  # between the processes of one launch, not from a file
    model.load_state_dict(sent[0])
    return True


def run_epochs(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               train_epoch: Callable[[int], dict], evaluate: Callable[[], dict], *, epochs: int, metric: str,
               eval_every: int = 1, patience: int | None = None, higher_is_better: bool = True,
               samples_per_epoch: int = 0, checkpoint: str | Path | None = None, fingerprint: dict | None = None,
               seed: int | None = None, scheduler=None, extra_state: Callable[[], dict] | None = None,
               load_extra_state: Callable[[dict], None] | None = None, tracker: Tracker | None = None,
               progress: bool = True, desc: str = "epochs",
               on_epoch_end: Callable[[dict], None] | None = None) -> LoopResult:
    """Train `model` epoch by epoch with early stopping on `metric` (see the module docstring).

    `on_epoch_end(record)` is called after each epoch's checkpoint is written."""
    tracker = scoped(tracker, "")
    fingerprint = json.loads(json.dumps(fingerprint or {}, default=str))
    worst = -math.inf if higher_is_better else math.inf
    state = {"epoch": 0, "best_epoch": 0, "best": worst, "best_metrics": {}, "bad": 0, "history": [],
             "seconds": 0.0, "train_seconds": 0.0, "fingerprint": fingerprint, "extra": {}}
    best_state = _copy(model)
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.is_file():
        saved = read_state(ckpt)["fingerprint"]  # checked before anything is loaded into the model
        if saved != fingerprint:
            changed = sorted(k for k in fingerprint.keys() | saved.keys() if saved.get(k) != fingerprint.get(k))
            raise LlmrecError(f"{ckpt}: checkpoint of a different training ({', '.join(changed)} differ); "
                              "use another checkpoint file or delete it")
        groups, state = load_training_state(ckpt, optimizer, scheduler)
        model.load_state_dict(groups["model"])
        best_state = groups.get("best", {})
        torch.set_rng_state(groups["rng"]["torch"])
        if "cuda" in groups["rng"] and _cuda_index(model) is not None:
            torch.cuda.set_rng_state(groups["rng"]["cuda"], _cuda_index(model))
        if load_extra_state is not None:
            load_extra_state(state["extra"])
    elif seed is not None:
        torch.manual_seed(seed)

    def patience_out() -> bool:
        return patience is not None and state["bad"] >= patience

    bar = tqdm(total=epochs, initial=state["epoch"], disable=not progress, desc=desc, leave=False)
    while state["epoch"] < epochs and not patience_out():
        epoch = state["epoch"] + 1
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]  # the lr the epoch starts with (a scheduler may move it)
        model.train()
        numbers = train_epoch(epoch)
        train_seconds = time.perf_counter() - started
        state["train_seconds"] += train_seconds
        record = {"epoch": epoch, "samples": epoch * samples_per_epoch,
                  "train_seconds": round(state["train_seconds"], 3), **numbers}
        if epoch % eval_every == 0 or epoch == epochs:
            model.eval()
            valid = evaluate()
            record.update({f"valid_{k}": v for k, v in valid.items()})
            value = valid[metric]
            if value > state["best"] if higher_is_better else value < state["best"]:
                state.update(best=value, best_epoch=epoch, best_metrics=valid, bad=0)
                best_state = _copy(model)
            else:
                state["bad"] += 1
            bar.set_postfix({metric: f"{value:.4f}", "best": f"{state['best']:.4f}@{state['best_epoch']}"})
        record["seconds"] = time.perf_counter() - started
        tracker.log({"train_loss": numbers["loss"], **{k: v for k, v in numbers.items() if k != "loss"}, "lr": lr,
                     "samples_per_s": samples_per_epoch / train_seconds,
                     **{k: v for k, v in record.items() if k.startswith("valid_")}}, epoch)
        state.update(epoch=epoch, seconds=state["seconds"] + record["seconds"])
        state["history"].append(record)
        if extra_state is not None:
            state["extra"] = extra_state()
        if ckpt is not None and main_process():  # the main process writes
            save_training_state(ckpt, {"model": model.state_dict(), "best": best_state,
                                       "rng": _rng_state(model)}, optimizer, state, scheduler)
        bar.update(1)
        if on_epoch_end is not None:
            on_epoch_end(record)
    bar.close()

    model.load_state_dict(best_state)
    if _take_main_weights(model):
        best_state = _copy(model)
    model.eval()
    return LoopResult(best_epoch=state["best_epoch"], best_value=state["best"], best_metrics=state["best_metrics"],
                      best_state=best_state, history=state["history"], stopped_early=patience_out(),
                      seconds=state["seconds"])
