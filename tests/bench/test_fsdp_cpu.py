"""bench/fsdp_cpu.py's accounting: the bytes an optimizer's process holds, whole tensors or a shard's local part."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # `bench` is a top-level folder of the repository, not an installed package

from bench import fsdp_cpu  # noqa: E402


def test_held_bytes_counts_weights_gradients_and_adam_states():
    layer = torch.nn.Linear(4, 3)  # 15 float32 numbers
    opt = torch.optim.AdamW(layer.parameters())
    assert fsdp_cpu.held_bytes(opt) == {"weights": 60, "grads": 0, "adam": 0}
    layer(torch.ones(2, 4)).sum().backward()
    opt.step()
    # exp_avg and exp_avg_sq per parameter; the scalar step counters are not memory that grows with the model
    assert fsdp_cpu.held_bytes(opt) == {"weights": 60, "grads": 60, "adam": 120}


def test_both_layouts_run_the_same_recipe_but_the_sharding_switch():
    ddp, fsdp = (fsdp_cpu.overrides(8, layout) for layout in fsdp_cpu.LAYOUTS)
    assert [a for a, b in zip(ddp, fsdp) if a != b] == ["llm.fsdp=false"]
    assert "lcrec.finetune=full" in ddp and "lcrec.max_steps=8" in ddp
