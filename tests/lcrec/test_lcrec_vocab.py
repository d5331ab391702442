"""Index tokens: spelling, JSON round trip, atomic added tokens with grown embeddings and distinct new rows."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from llmrec.errors import LlmrecError
from llmrec.llm.backbones import load_backbone, tiny_backbone
from llmrec.methods.lcrec.vocab import ItemIndex, add_index_tokens, code_token, index_token_ids, parse_token

from lcrec_fixtures import synthetic_index


def test_spelling_and_json_round_trip(tmp_path):
    index = ItemIndex(np.array([[-1, -1, -1, -1], [12, 200, 7, 31], [12, 3, 0, 0]]))
    assert index.spell(1) == "<a_12><b_200><c_7><d_31>"
    assert code_token(3, 31) == "<d_31>" and parse_token("<c_7>") == (2, 7)
    assert index.tokens() == ["<a_12>", "<b_3>", "<b_200>", "<c_0>", "<c_7>", "<d_0>", "<d_31>"]
    index.save(tmp_path / "i.json")
    data = json.loads((tmp_path / "i.json").read_text())
    assert data == {"1": ["<a_12>", "<b_200>", "<c_7>", "<d_31>"], "2": ["<a_12>", "<b_3>", "<c_0>", "<d_0>"]}
    assert np.array_equal(ItemIndex.load(tmp_path / "i.json", n_items=3).codes, index.codes)


@pytest.mark.parametrize("data, message", [
    ({"1": ["<a_1>", "<b_2>"], "3": ["<a_1>", "<b_3>"]}, "no index for item 2"),
    ({"1": ["<b_1>", "<a_2>"], "2": ["<a_1>", "<b_3>"]}, "of level 1"),
    ({"1": ["<a_1>", "x"], "2": ["<a_1>", "<b_3>"]}, "not an index token"),
    ({"1": ["<a_1>"], "2": ["<a_1>", "<b_3>"]}, "expected a list of 1 tokens"),
])
def test_bad_index_json_names_the_problem(data, message):
    with pytest.raises(LlmrecError, match=message):
        ItemIndex.from_json(data, n_items=4 if "3" in data else 3)


def test_added_tokens_are_atomic_and_embeddings_grow():
    model, tok = load_backbone("tiny", device="cpu")
    before = model.get_input_embeddings().weight.shape[0]
    index = ItemIndex(np.array([[-1, -1], [0, 5], [1, 5], [1, 6]]))
    ids = add_index_tokens(model, tok, index)
    assert sorted(ids) == ["<a_0>", "<a_1>", "<b_5>", "<b_6>"] and len(set(ids.values())) == 4
    assert model.get_input_embeddings().weight.shape[0] == len(tok) >= before + 4
    text = "Response:" + index.spell(3) + ", " + index.spell(1)
    got = tok(text, add_special_tokens=False)["input_ids"]
    for t in index.item_tokens(3) + index.item_tokens(1):
        assert got.count(ids[t]) == 1
    table = index_token_ids(index, ids)
    assert table[3].tolist() == [ids["<a_1>"], ids["<b_6>"]]
    assert add_index_tokens(model, tok, index) == ids  # idempotent


def _cosines(rows):
    r = torch.nn.functional.normalize(rows.float(), dim=1)
    c = r @ r.T
    return c[~torch.eye(len(rows), dtype=torch.bool)]


@pytest.mark.parametrize("tied", [True, False])
def test_new_rows_are_distinct_on_the_input_and_the_output_side(tied):
    model, tok = tiny_backbone(tie_word_embeddings=tied)
    old_rows = model.get_input_embeddings().weight.detach().clone()
    ids = sorted(add_index_tokens(model, tok, synthetic_index(), seed=3).values())
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert (head is emb) == tied
    for w in (emb, head):
        assert _cosines(w[ids].detach()).abs().max() < 0.7  # 12 random 64-d vectors: far from parallel
        assert w[ids].std().item() == pytest.approx(model.config.initializer_range, rel=0.2)
    assert torch.equal(emb[: old_rows.shape[0]], old_rows)  # the old rows are untouched
    if not tied:  # the head's rows are drawn on their own
        assert not torch.allclose(emb[ids], head[ids])
    again, tok2 = tiny_backbone(tie_word_embeddings=tied)
    add_index_tokens(again, tok2, synthetic_index(), seed=3)
    assert torch.equal(again.get_input_embeddings().weight, emb)  # seeded: the same rows on a rebuild


def test_mean_init_gives_identical_rows_and_a_bad_init_is_refused():
    model, tok = tiny_backbone()
    ids = sorted(add_index_tokens(model, tok, synthetic_index(), init="mean").values())
    assert _cosines(model.get_input_embeddings().weight[ids].detach()).min() > 0.999
    with pytest.raises(LlmrecError, match="new token init"):
        add_index_tokens(*tiny_backbone(), synthetic_index(), init="zeros")


@pytest.mark.parametrize("tied", [True, False])
def test_matched_rows_take_the_scale_of_the_rows_they_join(tied):
    model, tok = tiny_backbone(tie_word_embeddings=tied)
    with torch.no_grad():  # a trained vocabulary: rows three times the initializer_range (SmolLM2: 0.136 vs 0.02)
        model.get_input_embeddings().weight.mul_(3.0)
        if not tied:
            model.get_output_embeddings().weight.mul_(3.0)
    old_std = model.get_input_embeddings().weight.std().item()
    ids = sorted(add_index_tokens(model, tok, synthetic_index(), init="matched").values())
    for w in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
        assert w[ids].std().item() == pytest.approx(old_std, rel=0.2)
        assert _cosines(w[ids].detach()).abs().max() < 0.7
