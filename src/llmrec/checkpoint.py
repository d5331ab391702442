"""Resumable training state in ONE safetensors file, written atomically (temp file, then rename): the one
checkpoint format of both training loops, the epoch loop (`llmrec.collab.loop`) and the LLM step loop
(`llmrec.llm.train`); docs/architecture.md.

The file holds named groups of tensors, `<group>.<name>` (the epoch loop: `model.*`, `best.*`, `rng.torch`; the
step loop: `trainable.*`), the optimizer's tensors (`optim.<param>.<name>`); the loop's bookkeeping (epoch or
step, history, counters, RNG states it keeps as JSON), the optimizer's non-tensor state and the learning-rate
scheduler's position ride along as JSON in the file's metadata. One file, one rename: a run killed at any
moment leaves either the previous state or the new one, never a mix. No pickle.
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


def save_training_state(path: str | Path, tensors: dict[str, dict[str, torch.Tensor]],
                        optimizer: torch.optim.Optimizer | dict, state: dict, scheduler=None) -> None:
    """Write groups of tensors, the optimizer (or its `state_dict()`, e.g. one gathered from shards), the scheduler
    (optional) and the JSON-able `state` to `path`."""
    flat, storages = {}, set()
    for group, named in tensors.items():
        if "." in group:
            raise ValueError(f"tensor group names may not contain '.': {group!r}")
        flat.update({f"{group}.{k}": _alone(v, storages) for k, v in named.items()})
    opt = optimizer if isinstance(optimizer, dict) else optimizer.state_dict()
    scalars = {}
    for idx, entry in opt["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value):
                flat[f"optim.{idx}.{name}"] = _alone(value, storages)
            else:
                scalars[f"{idx}.{name}"] = value
    metadata = {"format": str(FORMAT_VERSION), "trainer": json.dumps(state),
                "optimizer": json.dumps({"param_groups": opt["param_groups"], "scalars": scalars})}
    if scheduler is not None:
        metadata["scheduler"] = json.dumps(scheduler.state_dict())
    with atomic_file(path) as tmp:
        save_file(flat, str(tmp), metadata=metadata)


def _alone(t: torch.Tensor, storages: set) -> torch.Tensor:
    """`t` on the CPU with a storage of its own: safetensors refuses tensors that share one (tied weights, views),
    so those are copied; the rest are written as they are (a 7B checkpoint is not held twice in memory)."""
    t = t.detach().cpu().contiguous()
    if t.numel() == 0:  # nothing to share (every empty tensor has address 0)
        return t
    storage = t.untyped_storage()
    if storage.data_ptr() in storages or storage.nbytes() != t.numel() * t.element_size():
        t = t.clone()
        storage = t.untyped_storage()
    storages.add(storage.data_ptr())
    return t


def _metadata(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as fh:
        metadata = fh.metadata() or {}
    if metadata.get("format") != str(FORMAT_VERSION):
        raise LlmrecError(f"{path}: training checkpoint of format {metadata.get('format', 1)}, this llmrec reads "
                          f"{FORMAT_VERSION}; delete it to start over")
    return metadata


def read_state(path: str | Path) -> dict:
    """The loop's bookkeeping (`state` as saved) without loading any tensor: to inspect a checkpoint."""
    path = Path(path)
    try:
        return json.loads(_metadata(path)["trainer"])
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as exc:
        raise LlmrecError(f"{path}: unreadable training checkpoint ({exc}); delete it to start over") from None


def load_training_state(path: str | Path, optimizer: torch.optim.Optimizer, scheduler=None):
    """Restore the optimizer and the scheduler (when given) from `path`; return (tensor groups, state)."""
    path = Path(path)
    try:
        metadata = _metadata(path)
        flat = load_file(str(path))
        state = json.loads(metadata["trainer"])
        opt_meta = json.loads(metadata["optimizer"])
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as exc:
        raise LlmrecError(f"{path}: unreadable training checkpoint ({exc}); delete it to start over") from None
    groups: dict[str, dict[str, torch.Tensor]] = {}
    opt_state: dict[int, dict] = {}
    for key, value in flat.items():
        group, name = key.split(".", 1)
        if group == "optim":
            idx, name = name.split(".", 1)
            opt_state.setdefault(int(idx), {})[name] = value
        else:
            groups.setdefault(group, {})[name] = value
    for key, value in opt_meta["scalars"].items():
        idx, name = key.split(".", 1)
        opt_state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": opt_meta["param_groups"]})
    if scheduler is not None:
        scheduler.load_state_dict(json.loads(metadata["scheduler"]))
    return groups, state
