"""Alignment task samples, response-only loss, and the evaluation task's ranks."""
from __future__ import annotations

import re

import torch
import torch.nn.functional as F

from llmrec.methods.lcrec.generate import constrained_beam_search
from llmrec.methods.lcrec.tasks import (SeqRecEvalTask, SFTTask, UserText, build_samples, encode, seqrec_prompt,
                                        wrap)
from llmrec.methods.lcrec.templates import TEMPLATES

from lcrec_fixtures import synthetic_index, synthetic_split

ALL = {t: 1.0 for t in TEMPLATES}


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
    samples = build_samples(synthetic_split(), index, ALL, seed=0, log=lambda m: None)[0][:6]
    encoded = [encode(tok, s) for s in samples]
    for (ids, n_prompt), s in zip(encoded, samples):
        assert ids[:n_prompt] == tok(s.prompt)["input_ids"] and ids[-1] == tok.eos_token_id
    task = SFTTask(model, tok, samples)
    assert [task.encoded(r) for r in range(6)] == encoded
    batch = task.collate(list(range(6)))
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
