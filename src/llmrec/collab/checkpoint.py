"""Resumable training state in ONE safetensors file, written atomically (temp file, then rename).

The file holds the current weights (`model.*`), the best weights so far (`best.*`), the optimizer's tensors
(`optim.<param>.<name>`) and the CPU random-number state (`rng.torch`); the loop's bookkeeping (epoch, history,
counters), the optimizer's non-tensor state and the learning-rate scheduler's position ride along as JSON in the
file's metadata. One file, one rename: a run killed at any moment leaves either the previous epoch's state or the
new one, never a mix. No pickle. Written and read by `llmrec.collab.loop`, the epoch loop of every classic model
and of the RQ-VAE indexer (docs/architecture.md).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from llmrec.errors import LlmrecError
from llmrec.paths import atomic_file

FORMAT_VERSION = 2
"""Bump when the layout changes; a checkpoint of another version is refused with a clear message."""


def _plain(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage (tied weights, views)
    return {prefix + k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}


def save_training_state(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        best_state: dict[str, torch.Tensor], state: dict, scheduler=None) -> None:
    """Write model, best weights, optimizer, scheduler (optional), CPU RNG and the JSON-able `state` to `path`."""
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
    metadata = {"format": str(FORMAT_VERSION), "trainer": json.dumps(state),
                "optimizer": json.dumps({"param_groups": opt["param_groups"], "scalars": scalars})}
    if scheduler is not None:
        metadata["scheduler"] = json.dumps(scheduler.state_dict())
    with atomic_file(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_training_state(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        scheduler=None):
    """Restore model, optimizer, scheduler (when given) and RNG from `path`; return (best_state, state)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
        tensors = load_file(str(path))
        state = json.loads(metadata["trainer"])
        opt_meta = json.loads(metadata["optimizer"])
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as exc:
        raise LlmrecError(f"{path}: unreadable training checkpoint ({exc}); delete it to start over") from None
    if metadata.get("format") != str(FORMAT_VERSION):
        raise LlmrecError(f"{path}: training checkpoint of format {metadata.get('format', 1)}, this llmrec reads "
                          f"{FORMAT_VERSION}; delete it to start over")
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
    if scheduler is not None:
        scheduler.load_state_dict(json.loads(metadata["scheduler"]))
    torch.set_rng_state(tensors["rng.torch"])
    return groups["best."], state
