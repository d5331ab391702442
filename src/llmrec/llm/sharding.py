"""FSDP 2 sharding for the training loop (`llmrec.llm.train`): weights, gradients and AdamW states split over the
processes, so a model whose full fine-tuning does not fit one device (LC-Rec at 7B) trains on several.

The loop shards its loss module (the root: the task's whole module, so every call the task makes goes through
one forward that gathers the root's own weights) and, inside it, every transformer decoder layer on its own
(the classes a transformers model names in `_no_split_modules`), so only one layer's full weights exist at a
time. Everything that leaves the loop holds full tensors: checkpoints and `best/` are gathered to the main
process, parameter by parameter (a run written sharded resumes unsharded and the other way round), and loads
scatter full tensors back into shards. The module stays sharded after `fit`; `predict_rows` scores through the
root, with every process running the same number of batches (each layer's all-gather is collective).

torch >= 2.6's `fully_shard` (FSDP 2), imported only when a run shards, so the loop also runs on a torch without
it. With bf16 mixed precision the weights are gathered in bf16 and the gradients reduced in float32 into float32
shards (the float32 master weights). docs/gpu.md, "Sharding".
"""
from __future__ import annotations

import os
import sys
import weakref
from typing import Iterable, Iterator

import torch

_ROOTS: "weakref.WeakKeyDictionary[torch.nn.Module, torch.nn.Module]" = weakref.WeakKeyDictionary()
"""A task's module -> the sharded root that runs it (set by `shard`; read by `root_of`)."""


def requested(fsdp: bool) -> bool:
    """Sharding is asked for: `llm.fsdp` (TrainConfig.fsdp), or `accelerate launch` with an FSDP config."""
    return fsdp or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def layer_modules(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The decoder layers to shard one by one: instances of the classes listed in `_no_split_modules` by the
    transformers models inside `module` (a peft model's base model included); [] for a plain module."""
    names = set()
    for m in module.modules():
        names.update(getattr(m, "_no_split_modules", None) or ())
    return [m for m in module.modules() if type(m).__name__ in names]


def shard(root: torch.nn.Module, inner: torch.nn.Module, bf16: bool) -> torch.nn.Module:
    """Shard `root` in place over all processes of the default process group: each decoder layer inside it as
    its own unit, the rest as the root's unit. `inner` is the task's module that `root` runs; `predict_rows`
    finds the root through it. bf16: gather weights in bf16, reduce gradients in float32."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    def policy(cast_inputs: bool) -> MixedPrecisionPolicy:
        if not bf16:
            return MixedPrecisionPolicy()
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32,
                                    cast_forward_inputs=cast_inputs)

    for layer in layer_modules(root):
        fully_shard(layer, mp_policy=policy(True))
    fully_shard(root, mp_policy=policy(False))  # the root's inputs are the task's batch: labels stay as they are
    _ROOTS[inner] = root
    return root


def root_of(module: torch.nn.Module) -> torch.nn.Module | None:
    """The sharded root that runs `module`, or None when `module` is not sharded."""
    return _ROOTS.get(module)


def reshard(root: torch.nn.Module) -> None:
    """Free every gathered weight under `root`: its parameters are the shards again (FSDP 2 keeps the root's
    weights gathered after a forward, and then lists the gathered tensors as the module's parameters)."""
    from torch.distributed.fsdp import FSDPModule

    for m in root.modules():
        if isinstance(m, FSDPModule):
            m.reshard()


def set_gradient_sync(root: torch.nn.Module, sync: bool) -> None:
    """Reduce-scatter gradients after this backward (True), or keep accumulating them unsharded (False)."""
    root.set_requires_gradient_sync(sync)


def _is_dtensor(t) -> bool:
    """A sharded tensor (torch's DTensor: it exists only once torch's distributed tensors are loaded)."""
    module = sys.modules.get("torch.distributed.tensor")
    return module is not None and isinstance(t, module.DTensor)


def _whole(t: torch.Tensor, keep: bool) -> torch.Tensor | None:
    """A full CPU copy of `t` (all-gathered when sharded: every process calls it), or None where not kept."""
    full = t.full_tensor() if _is_dtensor(t) else t
    return full.detach().to("cpu", copy=True).contiguous() if keep else None


def gathered(named: Iterable[tuple[str, torch.Tensor]], keep: bool) -> dict[str, torch.Tensor]:
    """Full CPU copies of named tensors, one at a time (call on every process, in the same order); keep=False (the
    processes that do not write) gathers without keeping anything and returns {}."""
    whole = ((name, _whole(t, keep)) for name, t in named)
    return {name: t for name, t in whole if keep}


def assign(param: torch.Tensor, full: torch.Tensor) -> None:
    """Copy a full tensor into a parameter, scattering it into the parameter's shard when it is sharded."""
    full = full.to(param.device, param.dtype)
    if _is_dtensor(param):
        from torch.distributed.tensor import distribute_tensor

        full = distribute_tensor(full, param.device_mesh, param.placements)
    param.copy_(full)


def gathered_optimizer_state(optimizer: torch.optim.Optimizer, keep: bool) -> dict:
    """`optimizer.state_dict()` with every sharded state tensor gathered to a full CPU tensor (on every process,
    in order); keep=False returns it without the gathered tensors."""
    sd = optimizer.state_dict()  # its per-parameter dicts are the live state: build new ones
    state = {idx: {name: _whole(v, keep) if torch.is_tensor(v) else v for name, v in sorted(sd["state"][idx].items())}
             for idx in sorted(sd["state"])}
    return {**sd, "state": state}


def shard_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """After `optimizer.load_state_dict` of full tensors: scatter each state tensor of a sharded parameter into
    that parameter's layout (AdamW's `exp_avg` etc.; scalars such as `step` stay as they are)."""
    from torch.distributed.tensor import distribute_tensor

    for p in _params(optimizer):
        if not _is_dtensor(p):
            continue
        for name, value in optimizer.state.get(p, {}).items():
            if torch.is_tensor(value) and not _is_dtensor(value) and value.shape == p.shape:
                optimizer.state[p][name] = distribute_tensor(value.to(p.device), p.device_mesh, p.placements)


def _params(optimizer: torch.optim.Optimizer) -> Iterator[torch.Tensor]:
    for group in optimizer.param_groups:
        yield from group["params"]
