"""A saved run is a directory: config.yaml, metrics.json, weights as safetensors, peft adapters, a log.

`Run` is the only owner of a run directory (docs/architecture.md, "Run directory"): it checks the identity (the
config a directory was made with), resumes it, and writes every file in it, each atomically and on the main
process only (under `accelerate launch` the others read). Methods write their artefacts through it, directly in
the run directory or in a stage sub-folder (a loop's checkpoint/ and best/), never a run of their own.

`metrics.json` is written last: a directory without it is an unfinished run, and running the same command again
resumes it from its checkpoints instead of starting over. Budget fields (`BUDGET_FIELDS`: how long training runs
and how much of the test is scored) may change on resume, also for a finished run, which then continues training
from its checkpoints; any other change is refused. `log.txt` records the start, each resume (from which step or
epoch), every evaluation and the end.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file

from llmrec.config import ExperimentConfig, load_config, save_config, to_dict
from llmrec.errors import LlmrecError
from llmrec.paths import atomic_dir, atomic_file


_NOT_STATE = {"config.yaml", "log.txt", "split", "tracking"}
"""Run files that are not training state (tracking/: experiment-tracker logs, llmrec.tracking)."""
_NOT_RESULTS = {"report_to"}
"""Config fields that do not change what a run computes: an unfinished run resumes under new values."""
_STAGES = ("stage1", "stage2")
BUDGET_FIELDS = frozenset({
    # classic loops (a checkpoint every epoch, keyed without these): click models, sasrec-rank, lightgcn-bpr
    "collab.epochs", "collab.patience", "seqrank.epochs", "seqrank.patience", "bpr.epochs", "bpr.patience",
    "multvae.patience",  # not multvae.epochs: the KL annealing is planned over the epochs
    # the LLM loop (llmrec.llm.train.fit, keyed without these): click stages, LC-Rec, CLLM4Rec's fine-tuning
    *(f"{s}.{f}" for s in _STAGES for f in ("max_samples", "epochs", "patience", "eval_every")),
    "lcrec.max_steps", "lcrec.epochs", "lcrec.patience", "lcrec.eval_every",
    "cllm4rec.patience", "cllm4rec.eval_every",  # not *_epochs: they size the stages' tables and later stages
    # how much of the test is scored (the test runs again when a finished run resumes)
    "eval.test_rows", "lcrec.test_users",
})
"""Config fields (section.field) that only say how long training runs or how much of the test is scored, not
which model comes out of a step: they may change when a run resumes (a finished run then continues training).
Not here: fields of an earlier stage that a later one builds on (the BinLLM encoder, CLLM4Rec's pre-training),
and validation sizes (the best state so far was selected on them)."""

FIXED_BUDGETS = {
    "multvae.epochs": "Mult-VAE plans its KL annealing over the epochs",
    "cllm4rec.finetune_epochs": "CLLM4Rec sizes its fine-tuning table (draws per user) by it",
    "cllm4rec.content_epochs": "CLLM4Rec's later stages start from this pre-training",
    "cllm4rec.alternate_epochs": "CLLM4Rec's fine-tuning starts from this pre-training",
    "encoder.epochs": "BinLLM's prompts hold the codes of this encoder",
    "encoder.patience": "BinLLM's prompts hold the codes of this encoder",
    "lcrec.rqvae.epochs": "LC-Rec's item index comes from this RQ-VAE",
}
"""Fields that look like a budget but change the model: a run cannot continue under a new value (why, in the
refusal)."""


def main_process() -> bool:
    """Whether this process writes run files: always, except the non-zero ranks of `accelerate launch` / torchrun
    (they set RANK)."""
    return int(os.environ.get("RANK", "0") or 0) == 0


class Run:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.main = main_process()

    # -- lifecycle ------------------------------------------------------------------------------------------
    @classmethod
    def create_or_resume(cls, path: str | Path, config: ExperimentConfig) -> "Run":
        """Start a run directory, or reopen one made by the same config; a config that differs only in
        `BUDGET_FIELDS` (and report_to) takes the run's place, and a finished run so reopened becomes unfinished
        (its training continues from its checkpoints). Any other difference is refused. A directory that holds
        no training state yet (a run that failed before it trained) takes the new config."""
        run = cls(path)
        if run.main:
            run.path.mkdir(parents=True, exist_ok=True)
        cfg_file = run.path / "config.yaml"
        if not cfg_file.exists():
            run._save_config(config)
            return run
        try:
            old = to_dict(load_config(cfg_file, check=False))
        except LlmrecError:
            old = None  # unreadable: only a directory without training state may be taken over
        new = to_dict(config)
        if old == new:
            return run
        changed = sorted(_diff(old, new)) if old is not None else ["config.yaml unreadable"]
        if old is not None and all(c in BUDGET_FIELDS or c in _NOT_RESULTS for c in changed):
            budget = [c for c in changed if c in BUDGET_FIELDS]
            if not budget:  # report_to alone: a finished run keeps the config it ran with
                if not run.finished:
                    run._save_config(config)
                    run.log(f"report_to is now {config.report_to}")
                return run
            run._check_stage_budget(budget)
            run._save_config(config)
            was = ", ".join(f"{c} {_at(old, c)!r} -> {_at(new, c)!r}" for c in budget)
            if run.finished:
                if run.main:
                    run.file("metrics.json").unlink()
                run.log(f"budget changed ({was}): the finished run continues from its checkpoints")
            else:
                run.log(f"budget changed ({was})")
            return run
        if run.state():
            fixed = next((f"; {c} cannot change on resume: {FIXED_BUDGETS[c]}" for c in changed if c in FIXED_BUDGETS),
                         "")
            raise LlmrecError(f"{run.path}: holds a run with a different config ({', '.join(changed[:5])}){fixed}; "
                              "choose another --out or delete it")
        if run.main:
            shutil.rmtree(run.file("split"), ignore_errors=True)  # made from the old config's data options
        run._save_config(config)
        run.log("config replaced: the run had not started training (no checkpoints), so the new config "
                "takes its place")
        return run

    def _save_config(self, config: ExperimentConfig) -> None:
        if self.main:
            save_config(config, self.path / "config.yaml")

    def _check_stage_budget(self, budget: list[str]) -> None:
        """Stage 2 starts from stage 1's result: once it has state, stage 1's budget is fixed."""
        if any(c.startswith("stage1.") for c in budget) and self.has("stage2_train"):
            raise LlmrecError(f"{self.path}: stage 2 already trained from this stage 1; a different stage-1 budget "
                              "needs a new run (choose another --out)")

    def state(self) -> list[str]:
        """What training has left in the directory (checkpoints, weights, adapters): everything except the
        config, the log and the copied split. Empty: nothing trained yet."""
        if not self.path.is_dir():
            return []
        return sorted(p.name + ("/" if p.is_dir() else "") for p in self.path.iterdir()
                      if p.name not in _NOT_STATE and not p.name.startswith("."))

    def progress(self) -> list[str]:
        """Where the run's training loops stand, one entry per checkpoint (`llmrec.checkpoint`, one format for
        every loop): 'finetune step 40' (the LLM loop's NAME/checkpoint/), 'model_ckpt/last epoch 3' (a classic
        epoch loop's file)."""
        out = []
        for ckpt in sorted(self.path.glob("**/*.safetensors")):
            state = _training_state(ckpt)
            if state is None:
                continue
            name = ckpt.relative_to(self.path)
            if "step" in state and ckpt.parent.name == "checkpoint":
                where = name.parent.parent.as_posix()
                out.append(f"{'train' if where == '.' else where} step {state['step']}")
            elif "epoch" in state:
                out.append(f"{name.with_suffix('').as_posix()} epoch {state['epoch']}")
        return out

    @property
    def finished(self) -> bool:
        return (self.path / "metrics.json").exists()

    @property
    def config(self) -> ExperimentConfig:
        return load_config(self.path / "config.yaml", check=False)

    # -- files (written by the main process only) -----------------------------------------------------------
    def file(self, name: str) -> Path:
        return self.path / name

    def save_tensors(self, name: str, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
        if not self.main:
            return
        with atomic_file(self.file(name)) as tmp:
            save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp),
                      metadata={k: str(v) for k, v in (metadata or {}).items()})

    def load_tensors(self, name: str) -> dict[str, torch.Tensor]:
        f = self.file(name)
        if not f.exists():
            raise LlmrecError(f"{f}: missing from the run (was it trained with this method?)")
        return load_file(str(f))

    def save_json(self, name: str, obj) -> None:
        self.write(name, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, default=_jsonable)))

    def load_json(self, name: str):
        f = self.file(name)
        if not f.exists():
            raise LlmrecError(f"{f}: missing from the run")
        return json.loads(f.read_text())

    def write(self, name: str, write: Callable[[Path], object]) -> None:
        """`write(tmp)` fills a temporary file that then becomes `name` (atomically; main process only)."""
        if self.main:
            with atomic_file(self.file(name)) as tmp:
                write(tmp)

    def write_dir(self, name: str, write: Callable[[Path], object]) -> None:
        """`write(tmp)` fills a temporary folder that then replaces the folder `name` (e.g. save_pretrained)."""
        if self.main:
            with atomic_dir(self.file(name)) as tmp:
                write(tmp)

    def has(self, name: str) -> bool:
        return self.file(name).exists()

    def log(self, message: str) -> None:
        if not self.main:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.file("log.txt"), "a") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def finish(self, metrics: dict) -> None:
        self.save_json("metrics.json", metrics)

    @property
    def metrics(self) -> dict:
        return self.load_json("metrics.json")


class RunLog:
    """A tracker backend (llmrec.tracking) that writes one line per evaluation to the run's log.txt: the loops
    report their validation metrics (valid_*) to the tracker, whatever else follows them."""

    def __init__(self, run: Run):
        self.run = run

    def log(self, values: dict, step: int) -> None:
        valid = {k: v for k, v in values.items() if k.rsplit("/", 1)[-1].startswith("valid_")}
        if valid:
            scope = next(iter(valid)).rpartition("/")[0]
            text = " ".join(f"{k.rsplit('/', 1)[-1][len('valid_'):]} {v:.4f}" for k, v in valid.items())
            self.run.log(f"eval{' ' + scope if scope else ''} at {step}: {text}")

    def finish(self) -> None:
        pass


def open_run(path: str | Path) -> Run:
    run = Run(path)
    if not (run.path / "config.yaml").exists():
        raise LlmrecError(f"{run.path}: not a run directory (no config.yaml)")
    return run


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in set(a) | set(b):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}")
    return out


def _jsonable(obj):
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def _at(d: dict, dotted: str):
    for key in dotted.split("."):
        d = d.get(key) if isinstance(d, dict) else None
    return d


def _training_state(path: Path) -> dict | None:
    """The bookkeeping of a training checkpoint (llmrec.checkpoint), None for other safetensors."""
    from llmrec.checkpoint import read_state

    try:
        return read_state(path)
    except LlmrecError:  # not a checkpoint, or unreadable: the loop itself will say so
        return None
