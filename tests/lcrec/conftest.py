"""Fixtures for LC-Rec: a tiny random Llama with index tokens added; one torch thread (tiny models gain nothing
from more, and a shared two-core machine makes OpenMP threads wait on each other)."""
from __future__ import annotations

import pytest
import torch

from llmrec.llm.backbones import load_backbone
from llmrec.methods.lcrec.trie import IndexTrie
from llmrec.methods.lcrec.vocab import add_index_tokens, index_token_ids

from lcrec_fixtures import spread_new_rows, synthetic_index


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def tiny_with_index():
    """(model, tokenizer, index, trie) with the index tokens added to the tiny backbone."""
    model, tok = load_backbone("tiny", device="cpu")
    index = synthetic_index()
    ids = add_index_tokens(model, tok, index)
    spread_new_rows(model, list(ids.values()))
    trie = IndexTrie(index_token_ids(index, ids), eos_token_id=tok.eos_token_id)
    return model, tok, index, trie
