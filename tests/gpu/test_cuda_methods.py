"""Every LLM method on CUDA: a few training steps in bfloat16 (`llm.dtype=auto`) on the tiny backbone, the saved run
served on CUDA (evaluate / recommend / score), its scores within `cuda_checks.TOLERANCE` of the same weights scored
on the CPU in float32. Skipped without CUDA; the CPU test below runs the same checks in bfloat16 on the CPU so that
the checks themselves are exercised everywhere."""
from __future__ import annotations

import pytest
import torch

from cuda_checks import check_method

LLM_METHODS = ("tallrec", "binllm", "collm", "lcrec", "cllm4rec")

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.parametrize("method", LLM_METHODS)
def test_method_trains_in_bf16_on_cuda_and_serves_there(method, tmp_path):
    numbers = check_method(method, tmp_path, dtype="auto")  # auto: bfloat16 on CUDA
    print(numbers)


@cuda
def test_collm_collaborative_model_trains_and_serves_on_cuda(tmp_path):
    """CoLLM's collaborative model trains on the GPU and the reloaded mapping sits on the backbone's device."""
    from llmrec.recommender import Recommender

    check_method("collm", tmp_path, dtype="auto")
    rec = Recommender.from_pretrained(tmp_path / "collm")
    slots = rec._llm.embed_fn.__self__
    assert {p.device.type for p in slots.parameters()} == {"cuda"}


@cuda
def test_local_rank_picks_the_process_gpu(monkeypatch):
    from llmrec.llm.backbones import load_backbone

    last = torch.cuda.device_count() - 1
    monkeypatch.setenv("LOCAL_RANK", str(last))
    model, _ = load_backbone("tiny")
    assert next(model.parameters()).device == torch.device("cuda", last)
    assert next(model.parameters()).dtype == torch.bfloat16


@pytest.mark.parametrize("method", ["collm"])
def test_the_checks_in_bf16_on_the_cpu(method, tmp_path, monkeypatch):
    """The same checks without a GPU: bfloat16 on the CPU against float32 on the CPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    check_method(method, tmp_path, dtype="bfloat16")
