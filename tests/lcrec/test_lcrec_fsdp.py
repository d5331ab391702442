"""LC-Rec's full fine-tuning sharded with FSDP 2 over 2 CPU processes (gloo) trains, validates, tests and saves as
the same run replicated with DDP; a sharded launch of a LoRA method is refused in one line."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llmrec.errors import LlmrecError
from llmrec.experiment import train
from llmrec.llm.backbones import load_backbone
from llmrec.llm.sharding import layer_modules
from llmrec.recommender import Recommender

from launch import launch_cpu, results
from lcrec_fixtures import lcrec_experiment, synthetic_split

HERE = Path(__file__).resolve().parent
ACCELERATE = HERE.parent.parent / "configs" / "accelerate"


def launch_two(out: Path, result: Path, mode: str, config_file: Path | None = None) -> list[dict]:
    proc = launch_cpu(HERE / "fsdp_lcrec_script.py", out, result, mode, config_file=config_file, timeout=170)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return results(result)


def test_decoder_layers_are_the_units_sharded_one_by_one():
    model, _ = load_backbone("tiny", device="cpu")
    layers = layer_modules(model)
    assert [type(m).__name__ for m in layers] == ["LlamaDecoderLayer"] * 2
    assert layers == list(model.model.layers)
    assert layer_modules(torch.nn.Linear(3, 3)) == []  # a plain module: one unit, the root


@pytest.mark.timeout(400)
def test_full_finetuning_sharded_matches_ddp(tmp_path):
    fsdp = launch_two(tmp_path / "fsdp", tmp_path / "fsdp", "fsdp")
    ddp = launch_two(tmp_path / "ddp", tmp_path / "ddp", "ddp")
    assert [r["sharded_bf16"] for r in fsdp + ddp] == [[False], [False], [], []]
    assert fsdp[0]["history"] == fsdp[1]["history"] and fsdp[0]["test"] == fsdp[1]["test"]
    # the same batches, validations (beam search through the sharded model) and test as the replicated run
    # (which keeps its activations: the sharded one recomputes them, gradient checkpointing)
    assert [h["step"] for h in fsdp[0]["history"]] == [h["step"] for h in ddp[0]["history"]] == [2, 4]
    for hf, hd in zip(fsdp[0]["history"], ddp[0]["history"], strict=True):
        assert hf["train_loss"] == pytest.approx(hd["train_loss"], rel=1e-5)
        assert hf["ndcg@10"] == pytest.approx(hd["ndcg@10"], abs=1e-9) and hf["users"] == hd["users"] == 6
    assert fsdp[0]["test"] == pytest.approx(ddp[0]["test"], abs=1e-9) and fsdp[0]["test"]["users"] == 8
    # best/ holds every weight, whole (gathered from the shards), equal to the replicated run's
    best = [load_file(str(tmp_path / m / "train" / "best" / "trainable.safetensors")) for m in ("fsdp", "ddp")]
    assert best[0].keys() == best[1].keys() and len(best[0]) == 20  # embeddings, 2 x 9 layer weights, final norm
    for k, v in best[0].items():
        assert v.shape == best[1][k].shape and torch.allclose(v, best[1][k], rtol=1e-4, atol=1e-6), k
    # the sharded run's directory serves on one process, unsharded: its test metrics again, and top-k lists
    rec = Recommender.from_pretrained(tmp_path / "fsdp")
    assert rec.evaluate("test") == pytest.approx(fsdp[0]["test"], abs=1e-9)
    users = rec.split.users["user_id"].tolist()[:3]
    for u in users:
        got = rec.recommend(u, k=5, internal_ids=True)
        assert len({i for i, _, _ in got}) == 5


def test_sharding_a_lora_run_is_refused_before_anything_is_written(tmp_path):
    cfg = lcrec_experiment(index="random", max_steps=1)
    cfg.llm.fsdp = True
    with pytest.raises(LlmrecError, match="full fine-tuning only .*lcrec.finetune=lora"):
        train(cfg, tmp_path / "run", split=synthetic_split())
    assert not (tmp_path / "run").exists()


@pytest.mark.timeout(200)
def test_the_shipped_fsdp_config_shards_in_bf16(tmp_path):
    """configs/accelerate/fsdp.yaml as shipped (bf16), on CPU: the launch alone turns sharding on, weights are
    gathered in bf16, and the run lands within bf16's reach of the float32 sharded one."""
    shipped = launch_two(tmp_path / "yaml", tmp_path / "yaml", "ddp", config_file=ACCELERATE / "fsdp.yaml")
    fp32 = launch_two(tmp_path / "fsdp", tmp_path / "fsdp", "fsdp")
    assert [r["sharded_bf16"] for r in shipped] == [[True], [True]]
    for hb, hf in zip(shipped[0]["history"], fp32[0]["history"], strict=True):
        assert hb["step"] == hf["step"] and hb["train_loss"] != hf["train_loss"]
        assert hb["train_loss"] == pytest.approx(hf["train_loss"], rel=2e-3)
    assert shipped[0]["test"]["users"] == 8 and (tmp_path / "yaml" / "metrics.json").is_file()
