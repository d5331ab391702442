"""configs/accelerate/*.yaml parse with Accelerate's own config loader and name the expected launch mode; the
training loop refuses the sharded modes (DeepSpeed, FSDP) with one line."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.utils import DistributedType

from llmrec.errors import LlmrecError
from llmrec.llm.train import check_distributed_type

ACCELERATE = Path(__file__).parent.parent / "configs" / "accelerate"
EXPECTED = {"ddp.yaml": ("MULTI_GPU", None), "deepspeed-zero2.yaml": ("DEEPSPEED", 2),
            "deepspeed-zero3.yaml": ("DEEPSPEED", 3), "fsdp.yaml": ("FSDP", None)}


def test_every_shipped_file_is_listed():
    assert sorted(p.name for p in ACCELERATE.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_parses_with_accelerate_and_names_its_mode(name):
    cfg = load_config_from_file(str(ACCELERATE / name))
    kind, zero = EXPECTED[name]
    assert isinstance(cfg, ClusterConfig)
    assert DistributedType(cfg.distributed_type).value == kind
    assert cfg.mixed_precision == "bf16" and cfg.num_machines == 1 and not cfg.use_cpu
    if zero is not None:
        assert cfg.deepspeed_config["zero_stage"] == zero
    if kind == "FSDP":
        assert cfg.fsdp_config["fsdp_version"] == 2


@pytest.mark.parametrize("kind", ["DEEPSPEED", "FSDP"])
def test_loop_refuses_sharded_modes_in_one_line(kind):
    with pytest.raises(LlmrecError, match=f"{kind} is not supported.*ddp.yaml"):
        check_distributed_type(SimpleNamespace(distributed_type=DistributedType(kind)))
    check_distributed_type(SimpleNamespace(distributed_type=DistributedType.MULTI_GPU))
