"""LC-Rec distilled from a SASRec teacher (`teacher_weight`, ours): the teacher's targets per index level against
brute force, the loss mix, and a planted signal that reaches the LLM only through the teacher."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from llmrec import collab
from llmrec.data.samples import pad_histories
from llmrec.errors import LlmrecError
from llmrec.experiment import train
from llmrec.methods.lcrec import teacher as teacher_module
from llmrec.methods.lcrec.config import LCRecConfig
from llmrec.methods.lcrec.recommend import LCRecRecommender
from llmrec.methods.lcrec.tasks import SEQUENCE_TASK, SFTTask, build_samples, windows_with_context
from llmrec.methods.lcrec.teacher import NextItemTeacher

from lcrec_fixtures import lcrec_experiment, planted_split, synthetic_split
from test_lcrec_planted import PLANTED

QUIET = {"log": lambda m: None}


def _sasrec(n_items: int, seed: int = 0):
    torch.manual_seed(seed)
    return collab.build_model("sasrec", 5, n_items, max_len=6, dim=16, blocks=1, heads=1).eval()


def test_item_probs_are_sasrec_after_each_prefix_with_seen_items_left_out(tiny_with_index):
    """Target j of a history is scored after exactly the items before it (one forward for all targets equals one
    forward per prefix), items already seen and the padding id get 0, and each row is a distribution."""
    _, _, index, trie = tiny_with_index
    model = _sasrec(index.n_items)
    teacher = NextItemTeacher(model, trie, temperature=2.0)
    history = [3, 7, 1, 12, 9, 4, 20, 15, 2]  # longer than max_len: the earliest contexts are cut to 6 items
    probs = teacher.item_probs(history, 4)
    for j in range(4):
        before = history[: len(history) - 4 + j]
        with torch.no_grad():
            s = (model.encode(pad_histories([before], 6), last_only=True)[0, -1] @ model.item_emb.weight.T) / 2.0
        s[0] = -math.inf
        s[torch.as_tensor(before)] = -math.inf
        torch.testing.assert_close(probs[j], torch.softmax(s, -1), rtol=1e-5, atol=1e-6)
        assert float(probs[j, before].sum()) == 0.0
    torch.testing.assert_close(probs.sum(1), torch.ones(4))


def test_level_targets_are_the_item_distribution_marginalised_under_the_true_prefix(tiny_with_index):
    _, _, index, trie = tiny_with_index
    teacher = NextItemTeacher(_sasrec(index.n_items), trie)
    probs = torch.softmax(torch.randn(3, index.n_items, generator=torch.Generator().manual_seed(1)), -1)
    probs[:, 0] = 0
    items = [5, 17, 29]
    got = teacher.level_targets(probs, items)
    codes = index.codes
    for j, item in enumerate(items):
        for level in range(index.levels):
            under = [i for i in range(1, index.n_items) if (codes[i, :level] == codes[item, :level]).all()]
            expected = torch.zeros(len(trie.level_tokens[level]), dtype=probs.dtype)
            for i in under:  # the child of item i at this level, as a column of the level's tokens
                node = int(trie.item_node[level][i])
                col = int(torch.nonzero(trie.child[level] == node)[0, 1])
                expected[col] += probs[j, i]
            torch.testing.assert_close(got[level][j], expected / expected.sum())


def _taught_task(model, tok, index, trie, teacher, weight, item_loss):
    samples = build_samples(synthetic_split(), index, {SEQUENCE_TASK: 1.0, "seqrec": 0.3, "index2item": 0.3},
                            max_history=3, seed=0, **QUIET)[0]
    rows = [next(i for i, s in enumerate(samples) if s.task == t) for t in (SEQUENCE_TASK, "seqrec", "index2item")]
    rows.append(next(i for i, s in enumerate(samples) if s.task == SEQUENCE_TASK and s.targets >= 3))
    return SFTTask(model, tok, samples, trie=trie if item_loss == "trie" else None, teacher=teacher,
                   teacher_weight=weight), rows


@pytest.mark.parametrize("item_loss", ["vocab", "trie"])
def test_a_teacher_certain_of_the_observed_item_leaves_the_loss_unchanged(tiny_with_index, item_loss):
    model, tok, index, trie = tiny_with_index

    class Certain(NextItemTeacher):  # all mass on the observed next item
        def item_probs(self, history, n_targets):
            return torch.nn.functional.one_hot(torch.as_tensor(history[-n_targets:]), index.n_items).float()

    plain, rows = _taught_task(model, tok, index, trie, None, 0.0, item_loss)
    taught, _ = _taught_task(model, tok, index, trie, Certain(_sasrec(index.n_items), trie), 1.0, item_loss)
    with torch.no_grad():
        assert float(taught.loss(taught.collate(rows))) == pytest.approx(float(plain.loss(plain.collate(rows))),
                                                                         abs=1e-5)


@pytest.mark.parametrize("item_loss", ["vocab", "trie"])
def test_the_loss_mixes_hard_and_teacher_targets_as_brute_force_does(tiny_with_index, item_loss):
    """Loss(w) = mean over loss tokens of: -log p(token) for titles and alignment indices; for next-item index
    tokens (1 - w) * -log p(token) + w * sum_c q_l(c) * -log p(c), with p the trie's or the vocabulary's."""
    model, tok, index, trie = tiny_with_index
    teacher = NextItemTeacher(_sasrec(index.n_items, seed=3), trie)
    w = 0.7
    task, rows = _taught_task(model, tok, index, trie, teacher, w, item_loss)
    total, count = 0.0, 0
    for r in rows:
        ids, first = task.encoded(r)
        levels, nodes, ks = task.label_nodes(r)
        at, q = task.teacher_rows(r)
        with torch.no_grad():
            logits = model(input_ids=torch.as_tensor([ids])).logits[0].float()
        taught = {p: n for n, p in enumerate(at)}
        for p in range(len(ids) - first):
            lp = torch.log_softmax(logits[first + p - 1], -1)
            level = levels[p]
            if level < 0:
                total, count = total - float(lp[ids[first + p]]), count + 1
                continue
            toks = trie.level_tokens[level]
            if item_loss == "trie":
                allowed = trie.allowed[level][nodes[p]]
                lp = torch.log_softmax(logits[first + p - 1][toks].masked_fill(~allowed, -math.inf), -1)
            else:
                lp = lp[toks]
            hard = -float(lp[ks[p]])
            if p in taught:
                qq = q[level][taught[p] // index.levels]
                soft = -float((qq * lp.masked_fill(qq <= 0, 0)).sum())
                hard = (1 - w) * hard + w * soft
            total, count = total + hard, count + 1
    assert sum(len(task.teacher_rows(r)[0]) for r in rows) == sum(task.samples[r].targets for r in rows) * index.levels > 0
    with torch.no_grad():
        assert float(task.loss(task.collate(rows))) == pytest.approx(total / count, abs=1e-4)
    loss = task.loss(task.collate(rows))
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_windows_carry_the_sequence_up_to_their_end():
    seq = list(range(1, 12))
    for w, upto in windows_with_context(seq, 3):
        assert upto[-len(w):] == w and upto == seq[:len(upto)]


@pytest.mark.parametrize("field,value", [("teacher_weight", 1.5), ("teacher_weight", -0.1),
                                         ("teacher_temperature", 0.0)])
def test_bad_teacher_settings_are_refused(field, value):
    with pytest.raises(LlmrecError, match=f"LCRecConfig.{field}"):
        LCRecConfig(**{field: value}).validate()


class _Permuted(NextItemTeacher):
    """A teacher whose beliefs are moved to other items by a fixed permutation: the control that hides the
    signal while keeping the targets' shape and sharpness."""

    def item_probs(self, history, n_targets):
        probs = super().item_probs(history, n_targets)
        perm = torch.as_tensor(np.r_[0, 1 + np.random.default_rng(5).permutation(probs.shape[1] - 1)])
        return probs[:, perm]


@pytest.mark.parametrize("control", [False, True], ids=["teacher", "permuted-teacher-control"])
def test_planted_signal_reaches_the_llm_through_the_teacher_alone(control, tmp_path, monkeypatch):
    """teacher_weight=1: the observed items never enter the loss, only SASRec's beliefs (trained on the planted
    successor rule). Held-out users of the rule reach HR@1 >= 0.9; a teacher with its items permuted teaches a
    wrong rule and the held-out HR@1 falls to chance or below."""
    if control:
        monkeypatch.setattr(teacher_module, "NextItemTeacher", _Permuted)
        import llmrec.methods.lcrec.recipe as recipe
        monkeypatch.setattr(recipe, "NextItemTeacher", _Permuted)
    cfg = lcrec_experiment(**{**PLANTED, "teacher_weight": 1.0})
    cfg.seqrank.epochs, cfg.seqrank.patience, cfg.seqrank.progress = 60, 60, False
    metrics = train(cfg, tmp_path / "run", split=planted_split(200, seed=1))
    assert metrics["teacher"]["test_hr@10"] >= 0.9  # the teacher learnt the rule
    held_out = LCRecRecommender.load(tmp_path / "run", planted_split(50, seed=99)).evaluate("test")
    assert held_out["users"] == 50
    if control:
        assert held_out["hr@1"] <= 0.2, held_out
    else:
        assert held_out["hr@1"] >= 0.9 and metrics["test"]["hr@1"] >= 0.9, (held_out, metrics["test"])
