"""The pieces of the GPU path that run on CPU: each process's device, gradient checkpointing (same loss and
gradients as without), collaborative models on the run's device. The CUDA runs themselves are in tests/gpu/."""
from __future__ import annotations

import pytest
import torch

from llmrec.errors import LlmrecError
from llmrec.experiment import make_config
from llmrec.llm.backbones import load_backbone, resolve_device
from llmrec.llm.train import enable_gradient_checkpointing
from llmrec.methods.click import add_lora


# ---------------------------------------------------------------- device

@pytest.fixture
def two_gpus(monkeypatch):
    """What resolve_device sees on a machine with two GPUs (no GPU is touched: devices are only named)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("LOCAL_RANK", raising=False)


def test_auto_is_the_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_auto_is_the_process_own_gpu(two_gpus, monkeypatch):
    assert resolve_device("auto") == torch.device("cuda")  # one process: the current device
    monkeypatch.setenv("LOCAL_RANK", "1")  # accelerate launch / torchrun, second process on this node
    assert resolve_device("auto") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda", 1)  # a bare "cuda" too
    assert resolve_device("cuda:0") == torch.device("cuda", 0)  # an explicit index as written
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # one visible GPU per process
    assert resolve_device("auto") == torch.device("cuda", 0)


def test_bad_device_and_local_rank_are_one_line(two_gpus, monkeypatch):
    with pytest.raises(LlmrecError, match="not a torch device"):
        resolve_device("gpu0")
    monkeypatch.setenv("LOCAL_RANK", "x")
    with pytest.raises(LlmrecError, match="LOCAL_RANK"):
        resolve_device("auto")


def test_collaborative_models_train_on_the_resolved_device(monkeypatch, tmp_path):
    """classic.train_model puts the model on resolve_device("auto") (here the CPU: results as before)."""
    from llmrec.methods.classic import recipe as classic

    seen = []
    real = classic.resolve_device
    monkeypatch.setattr(classic, "resolve_device", lambda d="auto": seen.append(d) or real(d))
    monkeypatch.setattr(classic.trainer, "fit", lambda model, *a, **k: (_ for _ in ()).throw(_Stop(model)))
    model = torch.nn.Linear(2, 1)
    with pytest.raises(_Stop) as stopped:
        classic.train_model(make_config("mf"), _FakeSplit(), _FakeRun(tmp_path), model, "model")
    assert seen == ["auto"] and next(stopped.value.model.parameters()).device.type == "cpu"


class _Stop(Exception):
    def __init__(self, model):
        self.model = model


class _FakeSplit:
    train = test = None

    def part(self, name):
        return None


class _FakeRun:
    def __init__(self, path):
        self.path = path

    def file(self, name):
        return self.path / name


def test_binllm_codes_come_back_on_the_cpu():
    from llmrec.methods.binllm.model import BinaryEncoder

    user_bits, item_bits = BinaryEncoder(5, 7).all_codes()
    assert user_bits.shape == (5, 32) and item_bits.shape == (7, 32)


# ---------------------------------------------------------------- gradient checkpointing

def _lora_step(checkpointing: bool):
    """One training forward + backward of a LoRA tiny backbone (dropout on: the recomputation must draw the same
    masks); returns the loss and the LoRA gradients by name."""
    cfg = make_config("tallrec", overrides=[f"llm.gradient_checkpointing={str(checkpointing).lower()}",
                                            "llm.lora.dropout=0.3"])
    model, tok = load_backbone("tiny", device="cpu", dtype="float32")
    torch.manual_seed(0)
    model = add_lora(model, cfg)
    base = model.get_base_model()
    assert getattr(base, "is_activation_checkpointing", None) in (checkpointing, None)
    assert base.get_decoder().gradient_checkpointing == checkpointing
    model.train()
    ids = torch.tensor([tok("#Question: would the user enjoy Heat (1995)? #Answer: Yes").input_ids] * 3)
    torch.manual_seed(1)
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    loss_plain, grads_plain = _lora_step(False)
    loss_ckpt, grads_ckpt = _lora_step(True)
    torch.testing.assert_close(loss_ckpt, loss_plain, rtol=1e-6, atol=1e-6)
    assert grads_plain.keys() == grads_ckpt.keys() and any("lora_A" in n for n in grads_plain)
    for name, grad in grads_plain.items():
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=1e-5, atol=1e-7, msg=name)
    # LoRA B starts at zero, so only B has a gradient at the first step: it must be a real one
    assert all(g.abs().sum() > 0 for n, g in grads_plain.items() if "lora_B" in n)


def test_gradient_checkpointing_reaches_the_cllm4rec_decoder():
    """CLLM4Rec runs the backbone's decoder on inputs_embeds: the switch must still apply there."""
    from llmrec.methods.cllm4rec.model import CLLM4RecModel

    results = []
    for on in (False, True):
        backbone, _ = load_backbone("tiny", device="cpu")
        model = CLLM4RecModel(backbone, 4, 6, init_std=0.5, seed=0)
        if on:
            enable_gradient_checkpointing(model.backbone)
            assert model.backbone.get_decoder().gradient_checkpointing
        model.set_trainable(True, False)
        model.train()
        ids = torch.tensor([[1, 40, 41, model.vocab_size + 2, model.vocab_size + 4 + 3, 42]])
        loss = model.item_logits(model.last_hidden(ids, torch.ones_like(ids))).logsumexp(-1).sum()
        loss.backward()
        results.append((loss.detach(), model.collab.user.weight.grad.clone()))
    torch.testing.assert_close(results[1][0], results[0][0])
    torch.testing.assert_close(results[1][1], results[0][1])


def test_gradient_checkpointing_refuses_a_model_without_it():
    with pytest.raises(LlmrecError, match="does not support gradient checkpointing"):
        enable_gradient_checkpointing(torch.nn.Linear(2, 2))
