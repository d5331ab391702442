"""Alignment task samples, response-only loss, and the evaluation task's ranks."""
from __future__ import annotations

import re

import torch
import torch.nn.functional as F

from llmrec.methods.lcrec.generate import constrained_beam_search, score_all_items
import pytest

from llmrec.errors import LlmrecError
from llmrec.methods.lcrec.tasks import (SEQUENCE_TASK, SeqRecEvalTask, SFTTask, UserText, build_samples, encode,
                                        prompt_ids, seqrec_prompt, sequence_windows, wrap)
from llmrec.methods.lcrec.templates import SEQUENCE_INSTRUCTION, TEMPLATES
from llmrec.methods.lcrec.vocab import index_token_ids

from lcrec_fixtures import synthetic_index, synthetic_split

ALL = {t: 1.0 for t in TEMPLATES}
QUIET = {"log": lambda m: None}


def test_seqrec_has_every_prefix_with_the_last_20_history_items():
    split = synthetic_split()
    index = synthetic_index(n_items=split.n_items)
    samples, summary = build_samples(split, index, {"seqrec": 1.0}, max_history=3, seed=0, log=lambda m: None)
    expected = [(list(seq[:i])[-3:], seq[i]) for seq in split.users["train"] for i in range(1, len(seq))]
    assert summary == {"seqrec": len(expected)} and len(samples) == len(expected)
    for s, (hist, target) in zip(samples, expected):
        assert s.response == index.spell(target)
        assert ", ".join(index.spell(i) for i in hist) in s.prompt
        assert s.prompt.endswith("### Response:") and s.prompt.startswith("Below is an instruction")


def test_templates_filled_only_with_fields_the_item_has_and_text_tasks_skipped():
    split = synthetic_split()
    index = synthetic_index(n_items=split.n_items)
    messages = []
    samples, summary = build_samples(split, index, ALL, seed=1, log=messages.append)
    assert summary["itemsearch"].startswith("skipped") and summary["preferenceobtain"].startswith("skipped")
    assert len(messages) == 2
    no_text = {i for i, t in zip(split.items["item_id"], split.items["text"]) if not t}
    for s in samples:
        assert not re.search(r"\{[a-z_]+\}", s.prompt + s.response)
        assert '""' not in s.prompt and s.response.strip()
        if s.task == "index2item":
            item = next(i for i in range(1, index.n_items) if index.spell(i) in s.prompt)
            if item in no_text:
                assert s.response == split.items.set_index("item_id").at[item, "title"]
    per_item = summary["item2index"]
    assert per_item == summary["index2item"] == index.n_items - 1  # every item has at least a title
    used = {s.prompt for s in samples if s.task == "seqrec"}
    assert len({next(k for k, t in enumerate(TEMPLATES["seqrec"]) if t[0].split("{")[0] in p) for p in used}) > 3


def test_ratios_subsample_and_repeat():
    split = synthetic_split()
    index = synthetic_index(n_items=split.n_items)
    full = build_samples(split, index, {"item2index": 1.0}, log=lambda m: None)[1]["item2index"]
    half = build_samples(split, index, {"item2index": 0.5}, log=lambda m: None)[1]["item2index"]
    twice = build_samples(split, index, {"item2index": 2.5}, log=lambda m: None)[1]["item2index"]
    assert half == round(full * 0.5) and twice == 2 * full + round(0.5 * full)


def test_user_texts_enable_itemsearch_and_preferenceobtain():
    split = synthetic_split()
    index = synthetic_index(n_items=split.n_items)
    ut = UserText(preferences={1: ["likes dramas"], 2: ["likes comedies", "likes action"]},
                  intentions={1: {"user": "something calm", "item": "a quiet drama", "target": 3, "history": [1, 2]}})
    samples, summary = build_samples(split, index, {"itemsearch": 1.0, "preferenceobtain": 1.0}, user_text=ut)
    assert summary == {"preferenceobtain": 2, "itemsearch": 1}
    search = next(s for s in samples if s.task == "itemsearch")
    assert search.response == index.spell(3)
    pref = [s.response for s in samples if s.task == "preferenceobtain"]
    assert pref[0] == "likes dramas" and pref[1] in ("likes comedies", "likes action")


def test_loss_is_cross_entropy_on_response_tokens_only(tiny_with_index):
    model, tok, index, _ = tiny_with_index
    samples = build_samples(synthetic_split(), index, {**ALL, SEQUENCE_TASK: 1.0}, seed=0, **QUIET)[0]
    samples = samples[:5] + [s for s in samples if s.task == SEQUENCE_TASK][:2]  # two all-positions samples
    encoded = [encode(tok, s) for s in samples]
    for (ids, n_loss), s in zip(encoded, samples):
        if s.sequence is None:
            assert ids[:n_loss] == tok(s.prompt)["input_ids"] and ids[-1] == tok.eos_token_id
        else:  # the loss starts after the first item and runs to the end: every later index token, no EOS
            prompt = tok(s.prompt)["input_ids"]
            assert ids[:len(prompt)] == prompt and n_loss == len(prompt) + index.levels
            assert len(ids) - n_loss == index.levels * (len(s.sequence) - 1) and ids[-1] != tok.eos_token_id
    task = SFTTask(model, tok, samples)
    assert [task.encoded(r) for r in range(7)] == encoded
    batch = task.collate(list(range(7)))
    got = task.loss(batch)
    total, count = 0.0, 0
    for ids, n_prompt in encoded:  # reference: each sample alone, unpadded, full logits
        x = torch.tensor([ids])
        logp = F.log_softmax(model(input_ids=x).logits[0, :-1].float(), dim=-1)
        targets = x[0, 1:]
        picked = logp[torch.arange(len(targets)), targets][n_prompt - 1:]
        total, count = total - picked.sum(), count + len(picked)
    torch.testing.assert_close(got, total / count, rtol=1e-4, atol=1e-4)
    got.backward()
    assert any(p.grad is not None for p in model.parameters())


def test_trie_loss_is_the_item_likelihood_among_the_catalogue(tiny_with_index):
    """item_loss="trie": an all-positions sample's loss is, per index token, the softmax over the children of
    its prefix: summed over an item's tokens, minus the item's log-probability among all items after the same
    context (`score_all_items(..., trie=)`, the beam search's score); word tokens (titles) keep the full softmax."""
    model, tok, index, trie = tiny_with_index
    samples = build_samples(synthetic_split(), index, {"index2item": 1.0, SEQUENCE_TASK: 1.0}, seed=0, **QUIET)[0]
    seq = next(s for s in samples if s.task == SEQUENCE_TASK and len(s.sequence) >= 3)
    title = next(s for s in samples if s.task == "index2item")
    task = SFTTask(model, tok, [seq, title], trie=trie)
    table = index_token_ids(index, {t: tok.convert_tokens_to_ids(t) for t in index.tokens()})
    item_of = {tuple(table[i].tolist()): i for i in range(1, index.n_items)}
    prompt = tok(seq.prompt)["input_ids"]
    spelled = [tok(x, add_special_tokens=False)["input_ids"] for x in seq.sequence]
    ref = 0.0
    for j in range(1, len(spelled)):  # item j after the prompt and items 0..j-1
        context = prompt + [t for x in spelled[:j] for t in x]
        ref -= float(score_all_items(model, context, table, trie=trie)[item_of[tuple(spelled[j])]])
    ref /= index.levels * (len(spelled) - 1)
    with torch.no_grad():
        assert float(task.loss(task.collate([0]))) == pytest.approx(ref, abs=1e-4)
        plain = SFTTask(model, tok, [title])  # no index token in this response: the plain cross-entropy
        assert float(task.loss(task.collate([1]))) == pytest.approx(float(plain.loss(plain.collate([0]))), abs=1e-5)
    both = task.loss(task.collate([0, 1]))
    both.backward()
    assert torch.isfinite(both)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_eval_task_predicts_the_rank_of_the_target(tiny_with_index):
    model, tok, index, trie = tiny_with_index
    prompts = [tok(seqrec_prompt([1, 2, 3], index))["input_ids"], tok(seqrec_prompt([4], index))["input_ids"]]
    res = constrained_beam_search(model, prompts, trie, num_beams=5, pad_token_id=tok.pad_token_id,
                                  eos_token_id=tok.eos_token_id)
    targets = [int(res.items[0, 3]), next(i for i in range(1, index.n_items) if i not in res.items[1].tolist())]
    task = SeqRecEvalTask(model, prompts, targets, trie, num_beams=5, pad_token_id=tok.pad_token_id,
                          eos_token_id=tok.eos_token_id)
    assert task.predict(task.collate([0, 1])).tolist() == [4.0, float("inf")]


def test_seqrec_prompt_is_template_zero():
    index = synthetic_index()
    p = seqrec_prompt(list(range(1, 26)), index, max_history=20)
    assert p == wrap(TEMPLATES["seqrec"][0][0].format(inters=", ".join(index.spell(i) for i in range(6, 26))))


def test_all_positions_windows_make_every_later_item_a_target_once():
    split = synthetic_split()
    index = synthetic_index(n_items=split.n_items)
    samples, summary = build_samples(split, index, {SEQUENCE_TASK: 1.0}, max_history=2, **QUIET)
    expected = []
    for seq in split.users["train"]:
        windows = sequence_windows(seq, 2)
        assert all(2 <= len(w) <= 3 for w in windows) and [w[0] for w in windows[1:]] == [w[-1] for w in windows[:-1]]
        assert [i for w in windows for i in w[1:]] == list(seq[1:])  # every target once, in order
        expected += windows
    assert summary == {SEQUENCE_TASK: len(expected)} and len(samples) == len(expected)
    for s, w in zip(samples, expected):
        assert s.sequence == [index.spell(i) for i in w] and s.response == "".join(s.sequence)
        assert s.targets == len(w) - 1 and SEQUENCE_INSTRUCTION in s.prompt
    assert sequence_windows([4, 5, 6, 7], 0) == [[4, 5, 6, 7]] and sequence_windows([4], 3) == []
    paper = build_samples(split, index, {"seqrec": 1.0, "item2index": 1.0}, **QUIET)[0]
    assert {s.task: s.targets for s in paper} == {"seqrec": 1, "item2index": 0}  # one target per seqrec sample
    # the same number of next-item targets in far fewer samples
    assert sum(s.targets for s in samples) == sum(s.targets for s in paper)


def test_sequence_prompt_is_the_training_prefix_and_compact_wrapper_is_shorter(tiny_with_index):
    _, tok, index, _ = tiny_with_index
    history = [3, 7, 1, 12]
    for wrapper in ("alpaca", "compact"):
        ids, _ = encode(tok, build_samples(synthetic_split(), index, {SEQUENCE_TASK: 1.0}, max_history=8,
                                           wrapper=wrapper, **QUIET)[0][0])
        sample_prompt = prompt_ids(tok, [], index, kind="sequence", wrapper=wrapper)
        assert ids[:len(sample_prompt)] == sample_prompt
        full = prompt_ids(tok, history, index, kind="sequence", max_history=3, wrapper=wrapper)
        spelled = tok("".join(index.spell(i) for i in history[-3:]), add_special_tokens=False)["input_ids"]
        assert full == sample_prompt + spelled
    alpaca = prompt_ids(tok, history, index)
    compact = prompt_ids(tok, history, index, wrapper="compact")
    assert alpaca == tok(seqrec_prompt(history, index))["input_ids"] and len(compact) < len(alpaca) - 20
    assert wrap("Do it.", wrapper="compact") == "Do it.\nResponse:"
    with pytest.raises(LlmrecError, match="evaluation prompt"):
        prompt_ids(tok, history, index, kind="chat")


def test_eval_views_exclude_the_history_or_let_it_back(tiny_with_index):
    model, tok, index, trie = tiny_with_index
    prompt = tok(seqrec_prompt([1, 2, 3], index))["input_ids"]
    res = constrained_beam_search(model, [prompt], trie, num_beams=5, pad_token_id=tok.pad_token_id,
                                  eos_token_id=tok.eos_token_id)
    top, second = int(res.items[0, 0]), int(res.items[0, 1])
    # the best item is in the history: excluded, the target ranks one higher; the paper's view keeps it
    task = SeqRecEvalTask(model, [prompt, prompt], [second, top], trie, num_beams=5, pad_token_id=tok.pad_token_id,
                          eos_token_id=tok.eos_token_id, exclude=[[top], [top]], views=(True, False))
    assert task.n_rows == 4
    assert task.predict(task.collate([0, 1, 2, 3])).tolist() == [1.0, 2.0, float("inf"), 1.0]
    with pytest.raises(LlmrecError, match="needs `exclude`"):
        SeqRecEvalTask(model, [prompt], [1], trie, pad_token_id=0, eos_token_id=None, views=(True,))
