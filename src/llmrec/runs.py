"""A saved run is a directory: config.yaml, metrics.json, weights as safetensors, peft adapters, a log.

Each file is written atomically. `metrics.json` is written last: a directory without it is an unfinished run, and
running the same command again resumes it from its checkpoints instead of starting over.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from llmrec.config import ExperimentConfig, load_config, save_config, to_dict
from llmrec.errors import LlmrecError
from llmrec.paths import atomic_file


_NOT_STATE = {"config.yaml", "log.txt", "split", "tracking"}
"""Run files that are not training state (tracking/: experiment-tracker logs, llmrec.tracking)."""
_NOT_RESULTS = {"report_to"}
"""Config fields that do not change what a run computes: an unfinished run resumes under new values."""


class Run:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    # -- lifecycle ------------------------------------------------------------------------------------------
    @classmethod
    def create_or_resume(cls, path: str | Path, config: ExperimentConfig) -> "Run":
        """Start a run directory, or reopen an unfinished one made by the same config (else refuse). A directory
        that holds no training state yet (a run that failed before it trained) takes the new config."""
        run = cls(path)
        run.path.mkdir(parents=True, exist_ok=True)
        cfg_file = run.path / "config.yaml"
        if cfg_file.exists():
            try:
                old = to_dict(load_config(cfg_file, check=False))
            except LlmrecError:
                old = None  # unreadable: only a directory without training state may be taken over
            if old != to_dict(config):
                if old is not None and set(_diff(old, to_dict(config))) <= _NOT_RESULTS:
                    if not run.finished:  # a finished run keeps the config it ran with
                        save_config(config, cfg_file)
                        run.log(f"report_to is now {config.report_to}")
                    return run
                if run.state():
                    changed = sorted(_diff(old, to_dict(config))) if old is not None else ["config.yaml unreadable"]
                    raise LlmrecError(f"{run.path}: holds a run with a different config ({', '.join(changed[:5])}); "
                                      "choose another --out or delete it")
                shutil.rmtree(run.file("split"), ignore_errors=True)  # made from the old config's data options
                save_config(config, cfg_file)
                run.log("config replaced: the run had not started training (no checkpoints), so the new config "
                        "takes its place")
        else:
            save_config(config, cfg_file)
        return run

    def state(self) -> list[str]:
        """What training has left in the directory (checkpoints, weights, adapters): everything except the
        config, the log and the copied split. Empty: nothing trained yet."""
        if not self.path.is_dir():
            return []
        return sorted(p.name + ("/" if p.is_dir() else "") for p in self.path.iterdir()
                      if p.name not in _NOT_STATE and not p.name.startswith("."))

    @property
    def finished(self) -> bool:
        return (self.path / "metrics.json").exists()

    @property
    def config(self) -> ExperimentConfig:
        return load_config(self.path / "config.yaml", check=False)

    # -- files ----------------------------------------------------------------------------------------------
    def file(self, name: str) -> Path:
        return self.path / name

    def save_tensors(self, name: str, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
        with atomic_file(self.file(name)) as tmp:
            save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp),
                      metadata={k: str(v) for k, v in (metadata or {}).items()})

    def load_tensors(self, name: str) -> dict[str, torch.Tensor]:
        f = self.file(name)
        if not f.exists():
            raise LlmrecError(f"{f}: missing from the run (was it trained with this method?)")
        return load_file(str(f))

    def save_json(self, name: str, obj) -> None:
        with atomic_file(self.file(name)) as tmp:
            tmp.write_text(json.dumps(obj, indent=2, default=_jsonable))

    def load_json(self, name: str):
        f = self.file(name)
        if not f.exists():
            raise LlmrecError(f"{f}: missing from the run")
        return json.loads(f.read_text())

    def has(self, name: str) -> bool:
        return self.file(name).exists()

    def log(self, message: str) -> None:
        with open(self.file("log.txt"), "a") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def finish(self, metrics: dict) -> None:
        self.save_json("metrics.json", metrics)

    @property
    def metrics(self) -> dict:
        return self.load_json("metrics.json")


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
