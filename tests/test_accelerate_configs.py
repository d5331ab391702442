"""configs/accelerate/*.yaml parse with Accelerate's own config loader and name the expected launch mode; the
training loop refuses DeepSpeed with one line and shards with FSDP itself (LC-Rec's full fine-tuning only)."""
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


def test_loop_refuses_deepspeed_in_one_line_and_runs_fsdp_itself():
    with pytest.raises(LlmrecError, match="DEEPSPEED is not supported.*fsdp.yaml"):
        check_distributed_type(SimpleNamespace(distributed_type=DistributedType.DEEPSPEED))
    for kind in (DistributedType.FSDP, DistributedType.MULTI_GPU, DistributedType.NO):
        check_distributed_type(SimpleNamespace(distributed_type=kind))


@pytest.mark.parametrize("method", ["tallrec", "binllm", "collm", "cllm4rec", "lcrec"])
def test_an_fsdp_launch_of_a_lora_method_is_refused_before_anything_is_written(method, monkeypatch, tmp_path):
    """FSDP shards LC-Rec's full fine-tuning only (tests/lcrec/test_lcrec_fsdp.py); `accelerate launch` with
    fsdp.yaml sets ACCELERATE_USE_FSDP, and the other methods say so in one line."""
    from llmrec.config import ExperimentConfig
    from llmrec.experiment import train

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(LlmrecError, match="llm.fsdp: FSDP sharding trains LC-Rec's full fine-tuning only"):
        train(ExperimentConfig(method=method), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_sharding_leaves_the_collaborative_models_and_lcrec_full_finetuning_alone(monkeypatch):
    from llmrec.config import ExperimentConfig
    from llmrec.experiment import check_sharding
    from llmrec.methods.lcrec.config import LCRecConfig

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    for method in ("mf", "sasrec-rank", "multvae", "popularity-holdout"):
        check_sharding(ExperimentConfig(method=method))
    check_sharding(ExperimentConfig(method="lcrec", lcrec=LCRecConfig(finetune="full")))
