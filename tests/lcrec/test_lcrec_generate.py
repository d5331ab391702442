"""Trie and constrained beam search against brute force and against transformers' generate."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from llmrec.methods.lcrec.generate import constrained_beam_search, hf_constrained_generate, score_all_items
from llmrec.methods.lcrec.trie import IndexTrie
from llmrec.methods.lcrec.vocab import index_token_ids
from llmrec.errors import LlmrecError

PROMPTS = ["The user has interacted with items", "Which item is called \"Heat (1995)\"?",
           "A much longer prompt, with (brackets) and numbers 0123456789, to exercise left padding."]


def _prompts(tok):
    return [tok(p)["input_ids"] for p in PROMPTS]


def test_trie_walks_exactly_the_existing_indices(tiny_with_index):
    _, tok, index, trie = tiny_with_index
    table = index_token_ids(index, {t: tok.convert_tokens_to_ids(t) for t in index.tokens()})
    for item in range(1, index.n_items):
        assert trie.item_of(table[item].tolist()) == item
        assert trie.item_of(table[item].tolist() + [tok.eos_token_id]) == item
        for depth in range(index.levels):
            assert table[item, depth] in trie.allowed_next(table[item, :depth].tolist())
    assert trie.allowed_next(table[1].tolist()) == [tok.eos_token_id]
    # every allowed continuation of the root's children leads to real prefixes only
    real_prefixes = {tuple(r[:2]) for r in table[1:].tolist()}
    for a in trie.allowed_next([]):
        for b in trie.allowed_next([a]):
            assert (a, b) in real_prefixes
    assert trie.item_of([table[1, 0]] * index.levels) in (0, 1)  # a non-index spelling maps to no item (or itself)


def test_trie_refuses_shared_indices():
    table = np.array([[-1, -1], [5, 6], [5, 6]])
    with pytest.raises(LlmrecError, match="share an index"):
        IndexTrie(table)


@pytest.mark.parametrize("eos", [True, False])
def test_exhaustive_beam_equals_brute_force(tiny_with_index, eos):
    model, tok, index, trie = tiny_with_index
    table = index_token_ids(index, {t: tok.convert_tokens_to_ids(t) for t in index.tokens()})
    eos_id = tok.eos_token_id if eos else None
    n = index.n_items - 1
    res = constrained_beam_search(model, _prompts(tok), trie, num_beams=n + 3, pad_token_id=tok.pad_token_id,
                                  eos_token_id=eos_id)
    for b, prompt in enumerate(_prompts(tok)):
        brute = score_all_items(model, prompt, table, eos_token_id=eos_id)
        got = res.items[b]
        assert (got[:n] > 0).all() and (got[n:] == 0).all()  # every item once, padding after
        assert sorted(got[:n].tolist()) == list(range(1, n + 1))
        torch.testing.assert_close(res.scores[b, :n], brute[got[:n]], atol=1e-4, rtol=1e-4)
        ranked = brute[got[:n]]  # the brute-force scores in the beam's order: non-increasing (ties within float noise)
        assert (ranked[:-1] >= ranked[1:] - 1e-5).all()
        assert ranked[0] == pytest.approx(float(brute.max()), abs=1e-5)


def test_narrow_beam_returns_distinct_existing_items_best_first(tiny_with_index):
    model, tok, index, trie = tiny_with_index
    res = constrained_beam_search(model, _prompts(tok), trie, num_beams=5, pad_token_id=tok.pad_token_id,
                                  eos_token_id=tok.eos_token_id)
    assert res.items.shape == (3, 5)
    for row, sc in zip(res.items, res.scores):
        assert len(set(row.tolist())) == 5 and (row > 0).all() and (row < index.n_items).all()
        assert (sc[:-1] >= sc[1:]).all()
    assert res.ranks([res.items[0, 2], res.items[1, 0], 0]).tolist() == [3.0, 1.0, float("inf")]


def test_batched_equals_one_prompt_at_a_time(tiny_with_index):
    model, tok, _, trie = tiny_with_index
    prompts = _prompts(tok)
    together = constrained_beam_search(model, prompts, trie, num_beams=6, pad_token_id=tok.pad_token_id,
                                       eos_token_id=tok.eos_token_id)
    for b, p in enumerate(prompts):
        alone = constrained_beam_search(model, [p], trie, num_beams=6, pad_token_id=tok.pad_token_id,
                                        eos_token_id=tok.eos_token_id)
        assert alone.items[0].tolist() == together.items[b].tolist()
        torch.testing.assert_close(alone.scores[0], together.scores[b], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("beams", [4, 40])
def test_same_items_as_transformers_generate(tiny_with_index, beams):
    model, tok, index, trie = tiny_with_index
    prompts = _prompts(tok)
    ours = constrained_beam_search(model, prompts, trie, num_beams=beams, pad_token_id=tok.pad_token_id,
                                   eos_token_id=tok.eos_token_id)
    ref = hf_constrained_generate(model, prompts, trie, num_beams=beams, pad_token_id=tok.pad_token_id,
                                  eos_token_id=tok.eos_token_id)
    assert ours.items.tolist() == ref.items.tolist()
    finite = torch.isfinite(ref.scores)
    torch.testing.assert_close(ours.scores[finite], ref.scores[finite], atol=1e-3, rtol=1e-4)


def test_excluded_items_never_come_back_and_the_rest_equals_brute_force(tiny_with_index):
    model, tok, index, trie = tiny_with_index
    table = index_token_ids(index, {t: tok.convert_tokens_to_ids(t) for t in index.tokens()})
    n = index.n_items - 1
    prompt = _prompts(tok)[0]
    brute = score_all_items(model, prompt, table, eos_token_id=tok.eos_token_id)
    best_first = torch.argsort(brute, descending=True)[:-1].tolist()  # items by score (padding item last)
    excluded = best_first[:5] + best_first[-3:]  # the five best among them: a plain search would return them
    res = constrained_beam_search(model, [prompt, prompt], trie, num_beams=n + 2, pad_token_id=tok.pad_token_id,
                                  eos_token_id=tok.eos_token_id, exclude=[excluded, None])
    kept = [i for i in best_first if i not in excluded]
    assert res.items[0, :len(kept)].tolist() == kept and (res.items[0, len(kept):] == 0).all()
    assert res.items[1, :n].tolist() == best_first  # the same prompt without exclusion: every item
    torch.testing.assert_close(res.scores[0, :len(kept)], brute[kept], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("beams", [3, 6])
def test_a_narrow_beam_with_exclusion_still_returns_min_beams_unseen_items(tiny_with_index, beams):
    model, tok, index, trie = tiny_with_index
    # leave four items: whole subtrees are closed, and a beam spent on one would come back empty (without the
    # pruning, 3 beams return one item here)
    left = [3, 11, 17, 25]
    excluded = [i for i in range(1, index.n_items) if i not in left]
    res = constrained_beam_search(model, _prompts(tok), trie, num_beams=beams, pad_token_id=tok.pad_token_id,
                                  eos_token_id=tok.eos_token_id, exclude=[excluded] * 3)
    for row in res.items.tolist():
        got = [i for i in row if i > 0]
        assert len(got) == min(beams, 4) == len(set(got)) and set(got) <= set(left)


def test_duplicate_prompts_are_encoded_once_and_give_the_same_result(tiny_with_index):
    model, tok, _, trie = tiny_with_index
    p = _prompts(tok)
    calls = []
    hook = model.register_forward_pre_hook(lambda m, a, kw: calls.append(kw["input_ids"].shape), with_kwargs=True)
    try:
        dup = constrained_beam_search(model, [p[0], p[2], p[0]], trie, num_beams=4, pad_token_id=tok.pad_token_id,
                                      eos_token_id=tok.eos_token_id)
    finally:
        hook.remove()
    assert calls[0][0] == 2  # one prompt forward for the two distinct prompts
    one = constrained_beam_search(model, [p[0], p[2]], trie, num_beams=4, pad_token_id=tok.pad_token_id,
                                  eos_token_id=tok.eos_token_id)
    assert dup.items[0].tolist() == dup.items[2].tolist() == one.items[0].tolist()
    assert dup.items[1].tolist() == one.items[1].tolist()


def test_trie_normalised_scores_are_a_distribution_over_items_and_the_beam_finds_them(tiny_with_index):
    """normalize="trie": each level's softmax runs over the prefix's children only, so the item scores are
    log-probabilities over the catalogue (they sum to one) and the exhaustive search returns them, best first;
    with exclusion it returns the rest in the same order."""
    model, tok, index, trie = tiny_with_index
    table = index_token_ids(index, {t: tok.convert_tokens_to_ids(t) for t in index.tokens()})
    n = index.n_items - 1
    prompt = _prompts(tok)[1]
    brute = score_all_items(model, prompt, table, trie=trie, eos_token_id=tok.eos_token_id)  # EOS ignored
    assert float(brute[1:].exp().sum()) == pytest.approx(1.0, abs=1e-4)
    assert not torch.allclose(brute[1:], score_all_items(model, prompt, table)[1:])  # not the vocabulary's
    best_first = torch.argsort(brute, descending=True)[:-1].tolist()
    excluded = best_first[:4]
    res = constrained_beam_search(model, [prompt, prompt], trie, num_beams=n + 2, pad_token_id=tok.pad_token_id,
                                  eos_token_id=tok.eos_token_id, exclude=[None, excluded], normalize="trie")
    assert res.items[0, :n].tolist() == best_first
    torch.testing.assert_close(res.scores[0, :n], brute[best_first], atol=1e-4, rtol=1e-4)
    assert res.items[1, :n - 4].tolist() == best_first[4:]
    with pytest.raises(LlmrecError, match="normalize"):
        constrained_beam_search(model, [prompt], trie, normalize="items")


def test_token_nodes_follow_item_spellings_and_nothing_else(tiny_with_index):
    _, tok, index, trie = tiny_with_index
    table = index_token_ids(index, {t: tok.convert_tokens_to_ids(t) for t in index.tokens()})
    word = tok("hello")["input_ids"][-1]
    a, b = table[3].tolist(), table[7].tolist()
    levels, nodes, ks = trie.token_nodes([word] + a + b + [a[1], word] + a[:1])
    L = index.levels
    assert levels == [-1] + list(range(L)) * 2 + [-1, -1, 0]  # a level-1 token out of place continues nothing
    for start, item in ((1, a), (1 + L, b)):
        for lv in range(L):
            assert nodes[start + lv] == (trie.walk(item[:lv]) if lv else 0)
            assert int(trie.level_tokens[lv][ks[start + lv]]) == item[lv]
