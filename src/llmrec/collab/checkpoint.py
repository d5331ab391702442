"""Resumable training state in ONE safetensors file, written atomically (temp file, then rename).

The file holds the current weights (`model.*`), the best weights so far (`best.*`), the optimizer's tensors
(`optim.<param>.<name>`) and the CPU random-number state (`rng.torch`); the trainer's bookkeeping (epoch, history,
counters) and the optimizer's non-tensor state ride along as JSON in the file's metadata. One file, one rename:
a run killed at any moment leaves either the previous epoch's state or the new one, never a mix. No pickle.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from llmrec.errors import LlmrecError
from llmrec.paths import atomic_file


def _plain(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage (tied weights, views)
    return {prefix + k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}


def save_training_state(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        best_state: dict[str, torch.Tensor], state: dict) -> None:
    tensors = _plain(model.state_dict(), "model.")
    tensors.update(_plain(best_state, "best."))
    opt = optimizer.state_dict()
    scalars = {}
    for idx, entry in opt["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{name}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars[f"{idx}.{name}"] = value
    tensors["rng.torch"] = torch.get_rng_state()
    metadata = {"trainer": json.dumps(state),
                "optimizer": json.dumps({"param_groups": opt["param_groups"], "scalars": scalars})}
    with atomic_file(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_training_state(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer):
    """Restore model, optimizer and RNG from `path`; return (best_state, trainer state dict)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
        tensors = load_file(str(path))
        state = json.loads(metadata["trainer"])
        opt_meta = json.loads(metadata["optimizer"])
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as exc:
        raise LlmrecError(f"{path}: unreadable training checkpoint ({exc}); delete it to start over") from None
    groups: dict[str, dict[str, torch.Tensor]] = {"model.": {}, "best.": {}}
    opt_state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = value
        elif key != "rng.torch":
            prefix = key[: key.index(".") + 1]
            groups[prefix][key[len(prefix):]] = value
    for key, value in opt_meta["scalars"].items():
        idx, name = key.split(".", 1)
        opt_state.setdefault(int(idx), {})[name] = value
    model.load_state_dict(groups["model."])
    optimizer.load_state_dict({"state": opt_state, "param_groups": opt_meta["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    return groups["best."], state
