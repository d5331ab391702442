"""The one training loop every LLM method uses (TALLRec, BinLLM, CoLLM, LC-Rec, CLLM4Rec).

It knows nothing about prompts: a method hands it a `Task` (a module plus how to batch, score and
lose on rows of a table) and gets back the best trainable state, selected on evaluation metrics.

    result = fit(task, n_train_rows=len(train), eval_rows=len(valid), evaluate=lambda s: {"auc": auc(y, s)},
                 config=TrainConfig(lr=1e-3, batch_size=16, epochs=2), out_dir=run_dir, eval_task=valid_task)
    test_scores = predict_rows(test_task, len(test), batch_size=32)

Recipe: AdamW over the trainable parameters only, linear warm-up once for the whole run then cosine decay to
`min_lr` (default 0; `schedule="official"` gives the BinLLM / CoLLM code's schedule instead, see `lr_factor`),
evaluation every `eval_every` optimizer steps, keep the best state, stop after `patience` evaluations without
gain. Runs plain on one CPU process or under `accelerate launch` (DDP, or FSDP 2 sharding:
`llmrec.llm.sharding`); a killed run re-run with the same arguments resumes from `out_dir/checkpoint/`
(`llmrec.checkpoint`'s format) with the same batches (and the same place in the lr schedule).

Distributed layout: each optimizer step consumes `grad_accum_steps` global micro-batches of
`batch_size * num_processes` rows taken in order from a per-epoch permutation of the train rows (seeded by
(seed, epoch)); process r takes the r-th slice of `batch_size` rows. A trailing partial global batch is skipped
(a different handful of rows each epoch), so every micro-batch has the same size and the DDP gradient mean is
the mean over the global batch. Evaluation rows are split into contiguous shards, one per process, and gathered
back exactly once each, in order (not `gather_for_metrics`, which relies on a prepared DataLoader's
remainder bookkeeping and pads shards by repeating rows).

Scope: one process, DDP, or FSDP 2 (`TrainConfig.fsdp`, or a launch with configs/accelerate/fsdp.yaml) over any
number of processes (bf16 autocast on CUDA). DeepSpeed is refused in one line (`check_distributed_type`). Under
FSDP the module stays sharded after `fit`: `predict_rows` scores through it, checkpoints and `best/` hold full
tensors. For a task whose loss leaves some trainable parameters unused, pass
`accelerator=make_accelerator(find_unused_parameters=True)`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import (DistributedDataParallelKwargs, broadcast_object_list, gather_object, send_to_device,
                               set_seed)
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from llmrec.checkpoint import load_training_state, read_state, save_training_state
from llmrec.errors import LlmrecError
from llmrec.llm import sharding
from llmrec.paths import atomic_dir
from llmrec.tracking import Tracker, scoped

TRAINABLE_FILE = "trainable.safetensors"
CHECKPOINT_FILE = "state.safetensors"
"""The resume state inside `<out_dir>/checkpoint/`, in the one checkpoint format (`llmrec.checkpoint`)."""


@runtime_checkable
class Task(Protocol):
    """What the loop needs from a method: a module, and how to batch, lose and score rows of one table."""

    def trainable_module(self) -> torch.nn.Module:
        """The module whose `requires_grad` parameters are trained, checkpointed and saved."""

    def collate(self, rows: list[int]) -> dict:
        """Row indices of this task's table -> a batch (CPU tensors; optional int `n_tokens` for throughput).

        Should depend on the rows only (derive any randomness from row ids and a seed): it may run in a
        DataLoader worker, whose RNG is not part of a checkpoint.
        """

    def loss(self, batch: dict) -> torch.Tensor:
        """Scalar training loss of a batch (a mean over its rows)."""

    def predict(self, batch: dict) -> torch.Tensor:
        """[B] scores of a batch, for evaluation (called under no_grad, module in eval mode)."""

    # Optional: `param_groups() -> [{"params": [...], "lr": peak lr}, ...]` gives some trainable parameters their
    # own peak learning rate (same warm-up and decay); the rest train at `TrainConfig.lr`. Not a Protocol
    # member, so tasks without it still satisfy `isinstance(task, Task)`.


@dataclass
class TrainConfig:
    """Optimisation and selection settings of one LLM training run (defaults: the papers' LoRA recipe); the
    classic models' epochs are configured by `llmrec.collab.trainer.TrainConfig` and the epoch loop."""

    lr: float = 1e-3
    """Peak learning rate of AdamW (reached at the end of warm-up)."""
    weight_decay: float = 1e-3
    """AdamW decoupled weight decay, applied to matrices only (biases and norm weights, ndim < 2, get none)."""
    warmup_steps: int | None = None
    """Linear warm-up length in optimizer steps; overrides `warmup_ratio` when set."""
    warmup_ratio: float = 0.05
    """Warm-up length as a fraction of the planned optimizer steps (rounded up), used when `warmup_steps` is None."""
    schedule: Literal["cosine", "official"] = "cosine"
    """'cosine' (ours, the papers' words): warm-up once, then cosine from `lr` to `min_lr` over the rest of
    `decay_steps`. 'official' (the BinLLM / CoLLM code's LinearWarmupCosineLRScheduler): the warm-up restarts
    every `epoch_steps`, and the cosine runs over all of `decay_steps` counted from step 0 (see `lr_factor`)."""
    min_lr: float = 0.0
    """Floor the cosine decays to (the official configs: 8e-5)."""
    warmup_start_lr: float = 0.0
    """Learning rate of the first warm-up step (the official configs: 1e-5)."""
    epoch_steps: int = 50
    """'official' only: optimizer steps per "epoch", where the warm-up restarts (the official iters_per_epoch:
    50 on ML-1M, 100 on Amazon-Book)."""
    decay_steps: int | None = None
    """Length of the cosine in optimizer steps; None: the planned steps (the official code: max_epoch x
    iters_per_epoch = 200 x 50, far past where its early stopping ends a run)."""
    batch_size: int = 16
    """Rows per micro-batch per process (the papers: 16 per GPU; BinLLM stage 2: 4)."""
    grad_accum_steps: int = 1
    """Micro-batches accumulated per optimizer step; global batch = batch_size * grad_accum_steps * processes."""
    max_steps: int | None = None
    """Upper bound on optimizer steps. The plan is the smallest of max_steps, epochs and max_samples that are set."""
    epochs: float | None = None
    """Passes over the train rows (may be fractional)."""
    max_samples: int | None = None
    """Sample budget: training rows consumed over all processes (whole optimizer steps only)."""
    eval_every: int = 50
    """Evaluate every this many optimizer steps (and always at the end); the papers: 50 (ML-1M), 100 (Book)."""
    eval_at_start: bool = False
    """Also evaluate the untrained state at step 0 (it can then be selected as the best)."""
    patience: int | None = 20
    """Stop after this many consecutive evaluations without gain over the best; None never stops early."""
    eval_batch_size: int | None = None
    """Rows per evaluation batch per process; None uses `batch_size`."""
    max_grad_norm: float | None = None
    """Clip the global gradient norm to this value; None (the papers) does not clip."""
    seed: int = 2023
    """Seeds the per-epoch order of the train rows and the RNGs (dropout) at the start of a run."""
    log_every: int = 10
    """Record mean loss and learning rate in `train_log` every this many optimizer steps."""
    checkpoint_every: int | None = None
    """Also checkpoint every this many optimizer steps (a checkpoint is always written after each evaluation)."""
    num_workers: int = 0
    """DataLoader worker processes that run `collate`; 0 collates in the training process."""
    bf16: bool | None = None
    """bf16 autocast; None = on when CUDA supports bf16, off on CPU."""
    fsdp: bool = False
    """Shard weights, gradients and optimizer states over the processes with FSDP 2 (`llmrec.llm.sharding`); on
    whenever `accelerate launch` runs with distributed_type FSDP (configs/accelerate/fsdp.yaml). Needs an
    initialised process group (any `accelerate launch`, CPU/gloo included). Checkpoints hold full tensors either
    way, so a run may resume with or without it."""

    def validate(self) -> None:
        def bad(name: str, why: str):
            raise LlmrecError(f"TrainConfig.{name}: {why} (got {getattr(self, name)!r})")

        if not self.lr > 0:
            bad("lr", "must be > 0")
        if self.weight_decay < 0:
            bad("weight_decay", "must be >= 0")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            bad("warmup_steps", "must be >= 0")
        if not 0 <= self.warmup_ratio < 1:
            bad("warmup_ratio", "must be in [0, 1)")
        if self.schedule not in ("cosine", "official"):
            bad("schedule", "must be 'cosine' or 'official'")
        for name in ("min_lr", "warmup_start_lr"):
            if not 0 <= getattr(self, name) <= self.lr:
                bad(name, f"must be in [0, lr={self.lr}]")
        for name in ("batch_size", "grad_accum_steps", "eval_every", "log_every"):
            if getattr(self, name) < 1:
                bad(name, "must be >= 1")
        if self.epoch_steps < 1:
            bad("epoch_steps", "must be >= 1")
        for name in ("max_steps", "max_samples", "patience", "checkpoint_every", "eval_batch_size", "decay_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                bad(name, "must be >= 1 or None")
        if self.epochs is not None and not self.epochs > 0:
            bad("epochs", "must be > 0 or None")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            bad("max_grad_norm", "must be > 0 or None")
        if self.num_workers < 0:
            bad("num_workers", "must be >= 0")
        if self.max_steps is None and self.epochs is None and self.max_samples is None:
            raise LlmrecError("TrainConfig: set at least one of max_steps, epochs, max_samples")


# Fields that do not change which batches are seen or which parameters come out; they may differ on resume.
_COSMETIC_FIELDS = {"log_every", "num_workers", "eval_batch_size", "checkpoint_every", "fsdp"}
# The budget: how long the loop runs and how often it evaluates. It may change on resume, and a finished run given
# more continues (with the default schedule the lr then follows the new plan from the step it resumed at).
_BUDGET_FIELDS = {"max_steps", "epochs", "max_samples", "patience", "eval_every"}
# Fields added after checkpoints were first written: left out of the resume key at their defaults, so that
# checkpoints written before them still resume.
_LATER_FIELDS = {"schedule": "cosine", "min_lr": 0.0, "warmup_start_lr": 0.0, "epoch_steps": 50,
                 "decay_steps": None}

OFFICIAL_SCHEDULE = {"schedule": "official", "warmup_steps": 200, "warmup_start_lr": 1e-5, "min_lr": 8e-5,
                     "epoch_steps": 50, "decay_steps": 200 * 50}
"""TrainConfig fields of the official BinLLM / CoLLM ML-1M configs' schedule (lr_sched linear_warmup_cosine_lr,
warmup_steps 200, warmup_lr 1e-5, min_lr 8e-5, iters_per_epoch 50, max_epoch 200)."""


def lr_factor(step: int, cfg: TrainConfig, total: int, warmup: int) -> float:
    """Learning rate of optimizer step `step` (0-based) as a fraction of `cfg.lr`.

    cosine: warm-up from warmup_start_lr over steps 0..warmup-1, then cosine from lr to min_lr over steps
    warmup..decay_steps (transformers' get_cosine_schedule_with_warmup when both floors are 0, to the bit).
    official, as LinearWarmupCosineLRScheduler.step(epoch, i) computes it for step = epoch * epoch_steps + i:
    while step < warmup, warmup_start_lr + (lr - warmup_start_lr) * i / warmup (i restarts every epoch, so with
    200 / 50 the lr climbs to about a quarter of `lr` four times); then
    min_lr + (lr - min_lr) * (1 + cos(pi * step / decay_steps)) / 2.
    """
    decay = cfg.decay_steps or total
    start, floor = cfg.warmup_start_lr / cfg.lr, cfg.min_lr / cfg.lr
    if step < warmup:
        k = step % cfg.epoch_steps if cfg.schedule == "official" else step
        return min(1.0, start + (1.0 - start) * (float(k) / float(max(1, warmup))))
    if cfg.schedule == "official":
        progress = float(step) / float(decay)
    else:
        progress = float(step - warmup) / float(max(1, decay - warmup))
    return floor + (1.0 - floor) * (0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


@dataclass
class TrainResult:
    """What a finished `fit` reports; the module already holds the best trainable state."""

    best_step: int
    """Optimizer step whose state was selected (the last step when there was no evaluation)."""
    best_metrics: dict
    """`evaluate`'s metrics at best_step ({} without evaluation)."""
    history: list[dict]
    """One dict per evaluation: step, epoch, samples, train_loss, train_seconds, the metrics, is_best."""
    steps: int
    """Optimizer steps taken in total (across resumed sessions)."""
    samples_seen: int
    """Training rows consumed over all processes."""
    train_seconds: float
    """Wall time spent in training steps (evaluation and checkpoints excluded), across resumed sessions."""
    tokens_per_second: float | None
    """Training tokens per second over all processes, when batches expose `n_tokens`."""
    step_seconds: list[float]
    """Wall time of each optimizer step run in this call (data, forward, backward, update)."""
    train_log: list[dict] = field(default_factory=list)
    """Every `log_every` steps: step, mean loss over the window (all processes), lr used, mean step seconds."""
    stopped_early: bool = False
    """True when `patience` evaluations without gain ended the run before the planned steps."""
    planned_steps: int = 0
    """Optimizer steps the schedule was planned for."""

    @property
    def mean_step_seconds(self) -> float | None:
        return float(np.mean(self.step_seconds)) if self.step_seconds else None


# ---------------------------------------------------------------- trainable state on disk

def trainable_state(module: torch.nn.Module, keep: bool = True) -> dict[str, torch.Tensor]:
    """The `requires_grad` parameters by name, detached CPU copies. A sharded module's are gathered: call it on
    every process then, keep=True on the one that writes (the others get {})."""
    return sharding.gathered(((n, p) for n, p in module.named_parameters() if p.requires_grad), keep)


def load_trainable(module: torch.nn.Module, path: str | Path) -> None:
    """Copy saved trainable parameters into `module`; the names must match its trainable parameters exactly.
    A sharded module takes each process's shard of them (call it on every process)."""
    path = Path(path)
    if not path.is_file():
        raise LlmrecError(f"{path}: no trainable-state file")
    _copy_trainable(module, load_file(str(path)), path)


def _copy_trainable(module: torch.nn.Module, saved: dict[str, torch.Tensor], path: Path) -> None:
    if (root := sharding.root_of(module)) is not None:
        sharding.reshard(root)  # into the shards: a copy into gathered weights would be dropped at the reshard
    params = {n: p for n, p in module.named_parameters() if p.requires_grad}
    missing, extra = sorted(params.keys() - saved.keys()), sorted(saved.keys() - params.keys())
    if missing or extra:
        raise LlmrecError(f"{path}: trainable parameters differ from the module's "
                          f"(missing {missing[:3]}, unexpected {extra[:3]})")
    with torch.no_grad():
        for n, p in params.items():
            if saved[n].shape != p.shape:
                raise LlmrecError(f"{path}: parameter {n} has shape {tuple(saved[n].shape)}, "
                                  f"the module's is {tuple(p.shape)}")
            sharding.assign(p, saved[n])


# ---------------------------------------------------------------- memory

def enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    """`llm.gradient_checkpointing`: keep only each decoder layer's input in training and recompute the layer in
    the backward pass (about a third more compute for activations that no longer grow with the depth).

    Non-reentrant checkpointing (`use_reentrant=False`): it needs no input that requires grad, so a LoRA model
    over frozen embeddings needs no `enable_input_require_grads`, and it restores the RNG state, so dropout
    draws the same masks and the loss and gradients equal those without it. `model`: a transformers model, or
    a peft model around one; eval mode (scoring, generation) is unaffected.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not getattr(base, "supports_gradient_checkpointing", False):
        raise LlmrecError(f"llm.gradient_checkpointing: {type(base).__name__} does not support gradient "
                          "checkpointing")
    kwargs = {"use_reentrant": False}
    if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.x; the older name warns there
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


# ---------------------------------------------------------------- accelerator and evaluation

def make_accelerator(bf16: bool | None = None, find_unused_parameters: bool = False) -> Accelerator:
    """The one Accelerator factory: bf16 autocast when asked (None: when CUDA supports it, or as `accelerate launch`
    set it), reusing a running state. `find_unused_parameters`: DDP tolerates trainable parameters a batch leaves
    unused (CLLM4Rec: a content batch never touches the collaborative tables); it costs a graph walk per step."""
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)] if find_unused_parameters else None
    if AcceleratorState._shared_state:  # already initialised in this process (its precision cannot change)
        acc = Accelerator(kwargs_handlers=handlers)
        if bf16 is not None and (acc.mixed_precision == "bf16") != bf16:
            raise LlmrecError(f"TrainConfig.bf16={bf16} but this process already runs Accelerate with "
                              f"mixed_precision={acc.mixed_precision!r}")
        return acc
    if bf16 is None:
        import os
        if os.environ.get("ACCELERATE_MIXED_PRECISION"):  # set by `accelerate launch`: respect it
            return Accelerator(kwargs_handlers=handlers)
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return Accelerator(mixed_precision="bf16" if bf16 else "no", kwargs_handlers=handlers)


def close_processes() -> None:
    """End this process's part of a multi-process run (`accelerate launch`): wait for the others, free what still
    holds the process group (a DDP-wrapped module the Accelerator kept), and tear the group down. Call it last in a
    script that ran `fit`; the CLI calls it after every command. Left to the interpreter's exit, the group's
    threads can abort a finished process ("terminate called without an active exception"): measured on 2 CPU
    processes under load, 10 of 45 launches of a bare Accelerate script, none of 45 with the group destroyed."""
    import gc
    import sys

    dist = sys.modules.get("torch.distributed")  # not imported: no process group to end
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.barrier()
        gc.collect()
        dist.destroy_process_group()


SHARDED_DISTRIBUTED = ("DEEPSPEED", "FSDP", "MEGATRON_LM")
"""Accelerate distributed types that shard the model: the loop shards with FSDP 2 only (module docstring)."""


def check_distributed_type(acc: Accelerator) -> None:
    """One clear line instead of a crash deep inside a wrapped model: the loop shards with its own FSDP 2
    (`llmrec.llm.sharding`), not with DeepSpeed's or Megatron's engines."""
    kind = _distributed_kind(acc)
    if kind in SHARDED_DISTRIBUTED and kind != "FSDP":
        raise LlmrecError(f"accelerate distributed type {kind} is not supported by llmrec's training loop (it runs "
                          "one process, DDP or FSDP); launch with --config_file configs/accelerate/fsdp.yaml "
                          "(sharded) or ddp.yaml")


def _distributed_kind(acc: Accelerator) -> str:
    return getattr(acc.distributed_type, "value", str(acc.distributed_type))


def _shard(n_rows: int, num_processes: int, index: int) -> range:
    """Contiguous shard of rows for one process; shards are full except the last non-empty one."""
    chunk = math.ceil(n_rows / num_processes) if n_rows else 0
    return range(min(n_rows, index * chunk), min(n_rows, (index + 1) * chunk))


def predict_rows(task: Task, n_rows: int, batch_size: int, accelerator: Accelerator | None = None) -> np.ndarray:
    """Scores of rows 0..n_rows-1 of `task`'s table, in row order, on every process (each row scored once).

    Rows are sharded over the processes; call it on all of them. The module is put in eval mode for the call.
    A sharded module (`fit` under FSDP) is called through its sharded root, and every process runs as many
    batches as the largest shard needs (a process out of rows scores a spare row and drops it).
    """
    if n_rows < 0 or batch_size < 1:
        raise LlmrecError(f"predict_rows: n_rows must be >= 0 and batch_size >= 1 (got {n_rows}, {batch_size})")
    acc = accelerator or make_accelerator()
    module = task.trainable_module()
    root = sharding.root_of(module)
    if root is None:
        module.to(acc.device)
    was_training = module.training
    module.eval()
    mine = _shard(n_rows, acc.num_processes, acc.process_index)
    chunk = math.ceil(n_rows / acc.num_processes) if n_rows else 0
    starts = list(range(mine.start, mine.stop, batch_size))
    if root is not None and n_rows:  # same number of forwards everywhere: each layer's all-gather is collective
        starts += [None] * (math.ceil(chunk / batch_size) - len(starts))
    parts = []
    try:
        with torch.no_grad(), acc.autocast():
            for start in starts:
                rows = [0] if start is None else list(range(start, min(start + batch_size, mine.stop)))
                batch = send_to_device(task.collate(rows), acc.device)
                scores = (task.predict(batch) if root is None else root(batch, task.predict)).reshape(-1)
                if scores.numel() != len(rows):
                    raise LlmrecError(f"Task.predict returned {scores.numel()} scores for {len(rows)} rows")
                if start is not None:
                    parts.append(scores.float())
    finally:
        module.train(was_training)
        if root is not None:  # the root keeps its gathered weights after a forward: give them back
            sharding.reshard(root)
    local = torch.cat(parts) if parts else torch.empty(0, device=acc.device)
    if acc.num_processes == 1:
        return local.cpu().numpy()
    # pad every shard to the same length, gather, keep the real entries (padding is only at shard ends)
    padded = torch.full((chunk,), float("nan"), device=acc.device)
    padded[: len(local)] = local
    valid = torch.zeros(chunk, dtype=torch.bool, device=acc.device)
    valid[: len(local)] = True
    scores, valid = acc.gather(padded), acc.gather(valid)
    out = scores[valid].cpu().numpy()
    assert len(out) == n_rows, (len(out), n_rows)
    return out


# ---------------------------------------------------------------- the plan of batches

@dataclass(frozen=True)
class _Plan:
    n_train_rows: int
    batch_size: int
    num_processes: int
    grad_accum_steps: int
    seed: int

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.num_processes

    @property
    def micro_per_epoch(self) -> int:
        return self.n_train_rows // self.global_batch

    def epoch_order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n_train_rows)

    def my_rows(self, order: np.ndarray, pos: int, process_index: int) -> list[int]:
        """Rows this process takes from micro-batch `pos` of an epoch with row order `order`."""
        start = pos * self.global_batch + process_index * self.batch_size
        return order[start:start + self.batch_size].tolist()


def _planned_steps(cfg: TrainConfig, plan: _Plan) -> int:
    bounds = []
    if cfg.max_steps is not None:
        bounds.append(cfg.max_steps)
    if cfg.epochs is not None:
        bounds.append(math.floor(cfg.epochs * plan.micro_per_epoch / cfg.grad_accum_steps))
    if cfg.max_samples is not None:
        bounds.append(cfg.max_samples // (plan.global_batch * cfg.grad_accum_steps))
    steps = min(bounds)
    if steps < 1:
        raise LlmrecError(f"TrainConfig: the budget (max_steps={cfg.max_steps}, epochs={cfg.epochs}, "
                          f"max_samples={cfg.max_samples}) is less than one optimizer step of "
                          f"{plan.global_batch * cfg.grad_accum_steps} rows")
    return steps


class _Batches:
    """Yields this process's micro-batches from global micro-batch `start` on, collated (maybe by workers)."""

    def __init__(self, task: Task, plan: _Plan, process_index: int, start: int, num_workers: int, pin: bool):
        self.task, self.plan, self.rank, self.next, self.workers, self.pin = \
            task, plan, process_index, start, num_workers, pin

    def __iter__(self) -> Iterator[dict]:
        while True:
            epoch, pos = divmod(self.next, self.plan.micro_per_epoch)
            order = self.plan.epoch_order(epoch)
            lists = [self.plan.my_rows(order, p, self.rank) for p in range(pos, self.plan.micro_per_epoch)]
            if self.workers == 0:
                batches = map(self.task.collate, lists)
            else:  # batch_size=None: collate_fn is applied to each row list as is. Its own generator, so
                # starting a loader (which draws worker seeds) leaves the global RNG, hence resume, untouched.
                gen = torch.Generator().manual_seed(self.plan.seed * 1_000_003 + epoch)
                batches = torch.utils.data.DataLoader(lists, batch_size=None, collate_fn=self.task.collate,
                                                      num_workers=self.workers, pin_memory=self.pin,
                                                      generator=gen)
            for b in batches:
                self.next += 1
                yield b


# ---------------------------------------------------------------- checkpoints

def _rng_state() -> dict:
    py = random.getstate()
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": [py[0], list(py[1]), py[2]],
             "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
             "torch": torch.get_rng_state().tolist()}
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def _set_rng_state(state: dict) -> None:
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    name, keys, pos, has_gauss, g = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, g))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _run_key(cfg: TrainConfig, plan: _Plan, eval_rows: int | None, selection_metric: str,
             higher_is_better: bool) -> dict:
    key = {k: v for k, v in dataclasses.asdict(cfg).items()
           if k not in _COSMETIC_FIELDS and not (k in _LATER_FIELDS and v == _LATER_FIELDS[k])}
    key.update(n_train_rows=plan.n_train_rows, num_processes=plan.num_processes, eval_rows=eval_rows,
               selection_metric=selection_metric, higher_is_better=higher_is_better)
    return key


def _plain(metrics: dict) -> dict:
    """Metric values as plain Python numbers (numpy/torch scalars do not serialise to JSON)."""
    if not isinstance(metrics, dict):
        raise LlmrecError(f"fit: evaluate() must return a dict of metrics, got {type(metrics).__name__}")
    return {str(k): (v.item() if hasattr(v, "item") else v) for k, v in metrics.items()}


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _optimizer_groups(task: Task, params: list, config: TrainConfig) -> tuple[list[dict], list[list]]:
    """AdamW parameter groups: the task's own (optional `param_groups()`), then every other trainable parameter
    at `config.lr`; within each, matrices get `config.weight_decay` and vectors (biases, norms) none. Returns
    (groups, [[parameter count, lr] per task group]); the default group comes first, so `train_log`'s lr is
    config.lr's schedule."""
    own = list(task.param_groups()) if hasattr(task, "param_groups") else []
    trainable, taken = {id(p) for p in params}, set()
    by_lr: list[tuple[list, float]] = []
    for g in own:
        ps, lr = list(g["params"]), float(g["lr"])
        if not lr > 0:
            raise LlmrecError(f"Task.param_groups: lr must be > 0, got {lr}")
        for p in ps:
            if id(p) not in trainable or id(p) in taken:
                raise LlmrecError("Task.param_groups: a parameter is not trainable or is in two groups")
            taken.add(id(p))
        by_lr.append((ps, lr))
    by_lr.insert(0, ([p for p in params if id(p) not in taken], config.lr))
    groups = [{"params": sel, "lr": lr, "weight_decay": config.weight_decay if decay else 0.0}
              for ps, lr in by_lr for decay in (True, False)
              if (sel := [p for p in ps if (p.ndim >= 2) == decay])]
    return groups, [[sum(p.numel() for p in ps), lr] for ps, lr in by_lr[1:]]


# ---------------------------------------------------------------- fit

def fit(task: Task, n_train_rows: int, eval_rows: int | None,
        evaluate: Callable[[np.ndarray], dict] | None, config: TrainConfig, out_dir: str | Path,
        selection_metric: str = "auc", higher_is_better: bool = True, *,
        eval_task: Task | None = None, accelerator: Accelerator | None = None,
        tracker: Tracker | None = None) -> TrainResult:
    """Train `task`'s trainable parameters; evaluate, select, early-stop, checkpoint; resume if a checkpoint exists.

    n_train_rows: rows 0..n-1 of `task`'s table are the training set.
    eval_rows: number of evaluation rows (0..eval_rows-1 of `eval_task`'s table); None trains without evaluation
        (the final state is then the result).
    evaluate: scores of the eval rows, in row order -> {metric: value}; must contain `selection_metric`.
    eval_task: the same trainable module over the evaluation table; defaults to `task` (for tasks whose collate
        serves evaluation rows too).
    out_dir: holds `checkpoint/` (the resume state `state.safetensors` in the one checkpoint format,
        `llmrec.checkpoint`; `log.jsonl` of evaluations and `train_log.jsonl` as plain copies to read) and `best/`
        (selected trainable weights `trainable.safetensors` + `best.json`; whole tensors, also under FSDP).
        Re-running with the same arguments after a kill resumes with the same subsequent batches; re-running a
        finished run returns its result.
    tracker: gets train_loss, lr, samples_per_s, tokens_per_s (when batches count tokens) every optimizer step
        and valid_<metric> at every evaluation (llmrec.tracking; give it the stage's prefix).
    Call it on every process under `accelerate launch`; all return the same steps, selection and metrics
    (timings are each process's own).
    """
    config.validate()
    out_dir = Path(out_dir)
    eval_task = eval_task or task
    tracker = scoped(tracker, "")
    module = task.trainable_module()
    if eval_task.trainable_module() is not module:
        raise LlmrecError("fit: eval_task must share task's trainable module (it scores the state being trained)")
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise LlmrecError("fit: the task's trainable module has no parameters with requires_grad=True")
    if n_train_rows < 1:
        raise LlmrecError(f"fit: n_train_rows must be >= 1 (got {n_train_rows})")
    if eval_rows is not None and (eval_rows < 1 or evaluate is None):
        raise LlmrecError("fit: eval_rows must be >= 1 and come with an `evaluate` function (or be None)")

    acc = accelerator or make_accelerator(config.bf16)
    check_distributed_type(acc)
    main = acc.is_main_process
    sharded = (sharding.requested(config.fsdp) or _distributed_kind(acc) == "FSDP") and acc.num_processes > 1
    plan = _Plan(n_train_rows, config.batch_size, acc.num_processes, config.grad_accum_steps, config.seed)
    if plan.micro_per_epoch < 1:
        raise LlmrecError(f"fit: n_train_rows={n_train_rows} is fewer than one global batch "
                          f"(batch_size {config.batch_size} x {acc.num_processes} processes)")
    total = _planned_steps(config, plan)
    # ceil like transformers, minus float noise (0.1 * 30 = 3.0000000000000004 must give 3)
    warmup = config.warmup_steps if config.warmup_steps is not None else math.ceil(config.warmup_ratio * total - 1e-9)
    run_key = _run_key(config, plan, eval_rows, selection_metric, higher_is_better)
    ckpt_dir, best_dir = out_dir / "checkpoint", out_dir / "best"
    eval_bs = config.eval_batch_size or config.batch_size

    # The loss goes through a module that DDP can wrap (or FSDP shard): its forward is the task's loss, its
    # parameters the task module's, so gradients are averaged over processes whatever the task does in `loss`.
    groups, group_lrs = _optimizer_groups(task, params, config)
    if group_lrs:  # the task's own learning rates are part of what a checkpoint was trained with
        run_key["param_group_lrs"] = group_lrs
    if sharded:
        if sharding.root_of(module) is not None:
            raise LlmrecError("fit: this module was sharded by an earlier fit; FSDP shards a module once, so train "
                              "it in one fit")
        names = {id(p): n for n, p in module.named_parameters()}
        module.to(acc.device)
        wrapper = sharding.shard(_LossModule(task), module, bf16=acc.mixed_precision == "bf16")
        now = dict(module.named_parameters())  # sharding replaced every parameter with its shard
        for g in groups:
            g["params"] = [now[names[id(p)]] for p in g["params"]]
        params = [p for p in module.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(groups, lr=config.lr)
    else:
        wrapper = acc.prepare_model(_LossModule(task))
        optimizer = acc.prepare_optimizer(torch.optim.AdamW(groups, lr=config.lr))
    # Not prepared: Accelerate's scheduler wrapper steps once per process, we want one step per optimizer step.
    # A plain function (not an object), so the scheduler's state is only its position: resume restores that.
    def factor(step: int) -> float:
        return lr_factor(step, config, total, warmup)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    s = {"run": run_key, "step": 0, "micro": 0, "best_value": None,
         "best_step": None, "best_metrics": {}, "evals_without_gain": 0, "last_eval_step": None,
         "train_seconds": 0.0, "tokens_seen": 0, "finished": False, "stopped_early": False,
         "loss_sum": 0.0, "loss_count": 0, "win_loss": 0.0, "win_secs": 0.0, "win_n": 0}
    history: list[dict] = []
    train_log: list[dict] = []
    set_seed(config.seed, device_specific=True)
    ckpt_file = ckpt_dir / CHECKPOINT_FILE
    if (ckpt_dir / "state.json").is_file():
        raise LlmrecError(f"{ckpt_dir}: checkpoint of an older llmrec (state.json, optim.pt); this one reads "
                          f"{CHECKPOINT_FILE}; delete it to start over")
    if ckpt_file.is_file():
        saved = read_state(ckpt_file)
        diff = sorted(k for k in run_key.keys() | saved["run"].keys()
                      if k not in _BUDGET_FIELDS and run_key.get(k) != saved["run"].get(k))
        if diff:
            k = diff[0]
            raise LlmrecError(f"{ckpt_dir}: written with {k}={saved['run'].get(k)!r}, now {run_key.get(k)!r} "
                              f"(differing: {', '.join(diff)}); use the same settings or delete it")
        groups, saved = load_training_state(ckpt_file, optimizer, scheduler)
        if sharded:
            sharding.shard_optimizer_state(optimizer)
        _copy_trainable(module, groups["trainable"], ckpt_file)
        rng, history, train_log = saved.pop("rng"), saved.pop("history"), saved.pop("train_log")
        s.update(saved, run=run_key)
        if s["finished"] and s["step"] < total and not (config.patience is not None
                                                        and s["evals_without_gain"] >= config.patience):
            s.update(finished=False, stopped_early=False)  # a larger budget: the finished run continues
        if len(rng) == acc.num_processes:
            _set_rng_state(rng[acc.process_index])
        acc.wait_for_everyone()  # nobody rewrites the checkpoint before all have read it

    # `trainable`: trainable_state(module, keep=main), gathered once for both files when both are written
    def save_checkpoint(trainable: dict):
        rng = gather_object([_rng_state()])  # every process's RNG, so each resumes its own dropout stream
        optim = sharding.gathered_optimizer_state(optimizer, keep=main) if sharded else optimizer
        if main:
            with atomic_dir(ckpt_dir) as tmp:
                save_training_state(tmp / CHECKPOINT_FILE, {"trainable": trainable}, optim,
                                    {**s, "rng": rng, "history": history, "train_log": train_log}, scheduler)
                # the same logs as plain JSON lines, for readers such as bench/curves.py (resume reads the above)
                _write_jsonl(tmp / "log.jsonl", history)
                _write_jsonl(tmp / "train_log.jsonl", train_log)
        acc.wait_for_everyone()

    def save_best(metrics: dict, trainable: dict):
        if main:
            with atomic_dir(best_dir) as tmp:
                save_file(trainable, str(tmp / TRAINABLE_FILE))
                (tmp / "best.json").write_text(json.dumps({"step": s["step"], "metrics": metrics}, indent=1))
        acc.wait_for_everyone()

    def run_eval() -> dict:
        scores = predict_rows(eval_task, eval_rows, eval_bs, acc)
        metrics = _plain(evaluate(scores))  # on every process (user code may expect it), but
        metrics = broadcast_object_list([metrics])[0]  # the main process's metrics decide for all
        if selection_metric not in metrics:
            raise LlmrecError(f"fit: evaluate() returned {sorted(metrics)}, no selection metric "
                              f"{selection_metric!r}")
        value = float(metrics[selection_metric])
        best = s["best_value"]
        if best is None:  # the first evaluation always sets a best state, even a NaN one (one-class rows)
            gain = True
        elif math.isnan(value):
            gain = False
        else:
            gain = math.isnan(best) or (value > best if higher_is_better else value < best)
        weights = trainable_state(module, keep=main)  # sharded: gathered on every process, kept by the main
        if gain:
            s.update(best_value=value, best_step=s["step"], best_metrics=metrics, evals_without_gain=0)
            save_best(metrics, weights)
        else:
            s["evals_without_gain"] += 1
        row = {"step": s["step"], "epoch": s["micro"] / plan.micro_per_epoch,
               "samples": s["step"] * plan.global_batch * config.grad_accum_steps,
               "train_loss": s["loss_sum"] / s["loss_count"] if s["loss_count"] else None,
               "train_seconds": round(s["train_seconds"], 3), **metrics, "is_best": gain}
        history.append(row)
        tracker.log({f"valid_{k}": v for k, v in metrics.items()}, s["step"])
        s.update(last_eval_step=s["step"], loss_sum=0.0, loss_count=0)
        if main:
            best_txt = f"best {_fmt(s['best_value'])} @ {s['best_step']}"
            tqdm.write(f"step {s['step']}/{total} | " + " ".join(f"{k} {_fmt(v)}" for k, v in metrics.items())
                       + f" | {best_txt} | no gain x{s['evals_without_gain']}")
        save_checkpoint(weights)
        return metrics

    def patience_out() -> bool:
        return config.patience is not None and s["evals_without_gain"] >= config.patience

    step_seconds: list[float] = []
    if not s["finished"]:
        wrapper.train()
        if eval_rows is not None and config.eval_at_start and s["step"] == 0 and s["last_eval_step"] is None:
            run_eval()
        batches = iter(_Batches(task, plan, acc.process_index, s["micro"], config.num_workers,
                                pin=acc.device.type == "cuda"))
        bar = tqdm(total=total, initial=s["step"], disable=not main, desc="train", dynamic_ncols=True)
        postfix = {selection_metric: _fmt(history[-1][selection_metric])} if history else {}
        try:
            while s["step"] < total and not patience_out():
                t0 = time.perf_counter()
                lr = optimizer.param_groups[0]["lr"]
                loss_sum = torch.zeros((), device=acc.device)
                tokens = 0
                for m in range(config.grad_accum_steps):
                    batch = next(batches)
                    tokens += int(batch.get("n_tokens", 0)) if isinstance(batch, dict) else 0
                    batch = send_to_device(batch, acc.device)
                    sync = m == config.grad_accum_steps - 1  # gradients reduced on the last micro-batch only
                    if sharded:
                        sharding.set_gradient_sync(wrapper, sync)
                    with contextlib.nullcontext() if sync or sharded else acc.no_sync(wrapper):
                        with acc.autocast():
                            loss = wrapper(batch)
                        acc.backward(loss / config.grad_accum_steps)
                    loss_sum += loss.detach().float()
                if config.max_grad_norm is not None:
                    if sharded:  # the norm over all shards (DTensor gradients)
                        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                    else:
                        acc.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step_loss = acc.reduce(loss_sum / config.grad_accum_steps, "mean").item()
                if not math.isfinite(step_loss):
                    raise RuntimeError(f"training loss is {step_loss} at step {s['step'] + 1} (lr {lr:.3g})")
                dt = time.perf_counter() - t0
                step_seconds.append(dt)
                s["step"] += 1
                s["micro"] += config.grad_accum_steps
                s["train_seconds"] += dt
                tokens = int(acc.reduce(torch.tensor(tokens, device=acc.device), "sum").item()) \
                    if acc.num_processes > 1 else tokens
                s["tokens_seen"] += tokens
                s["loss_sum"] += step_loss
                s["loss_count"] += 1
                s["win_loss"] += step_loss  # the log window lives in the checkpoint state too
                s["win_secs"] += dt
                s["win_n"] += 1
                if s["step"] % config.log_every == 0:
                    train_log.append({"step": s["step"], "loss": s["win_loss"] / s["win_n"], "lr": lr,
                                      "step_seconds": s["win_secs"] / s["win_n"]})
                    s.update(win_loss=0.0, win_secs=0.0, win_n=0)
                tracker.log({"train_loss": step_loss, "lr": lr,
                             "samples_per_s": plan.global_batch * config.grad_accum_steps / dt,
                             **({"tokens_per_s": tokens / dt} if tokens else {})}, s["step"])
                postfix["loss"] = f"{step_loss:.4f}"
                bar.set_postfix(postfix, refresh=False)
                bar.update(1)
                if eval_rows is not None and s["step"] % config.eval_every == 0:
                    metrics = run_eval()
                    postfix[selection_metric] = _fmt(metrics[selection_metric])
                    wrapper.train()
                elif config.checkpoint_every and s["step"] % config.checkpoint_every == 0:
                    save_checkpoint(trainable_state(module, keep=main))
        finally:
            bar.close()
        s["stopped_early"] = s["step"] < total
        if eval_rows is not None and s["last_eval_step"] != s["step"]:
            run_eval()
        weights = trainable_state(module, keep=main)
        if eval_rows is None:
            s.update(best_step=s["step"], best_metrics={})
            save_best({}, weights)
        s["finished"] = True
        save_checkpoint(weights)

    load_trainable(module, best_dir / TRAINABLE_FILE)
    return TrainResult(
        best_step=s["best_step"], best_metrics=s["best_metrics"], history=history, steps=s["step"],
        samples_seen=s["step"] * plan.global_batch * config.grad_accum_steps,
        train_seconds=s["train_seconds"],
        tokens_per_second=(s["tokens_seen"] / s["train_seconds"]) if s["tokens_seen"] and s["train_seconds"] else None,
        step_seconds=step_seconds, train_log=train_log, stopped_early=s["stopped_early"], planned_steps=total)


class _LossModule(torch.nn.Module):
    """forward(batch) = task.loss(batch); holds the task's module so DDP sees (and syncs) its parameters, and
    FSDP gathers them. forward(batch, fn) runs another of the module's tasks (`predict_rows` under FSDP)."""

    def __init__(self, task: Task):
        super().__init__()
        self.inner = task.trainable_module()
        self.__dict__["_task"] = task  # not registered: a task that is itself a Module must not nest twice

    def forward(self, batch, fn: Callable[[dict], torch.Tensor] | None = None):
        return (fn or self._task.loss)(batch)
