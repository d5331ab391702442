"""Prefix-shared scoring of click prompts: a user's rows with the same history share everything before the target
item, encoded once (llmrec.llm.scoring, `prefix_cache`). It must give the plain path's scores for every prompt
kind, CoLLM's embedding slots included, and never share a prefix whose embeddings differ."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from llmrec import collab
from llmrec.config import load_config
from llmrec.llm import train as loop
from llmrec.llm.backbones import load_backbone
from llmrec.llm.prompts import EMBED
from llmrec.llm.scoring import ScoringConfig, YesScorer
from llmrec.methods.binllm.model import bits_to_text
from llmrec.methods.click import ClickPrompts, ClickTask, scorer_for
from llmrec.methods.collm.model import CoLLM

TOL = 1e-4
"""fp32: the shared-prefix path's scores against every prompt scored whole (the documented tolerance)."""


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return load_backbone("tiny")


def rows_with_shared_prefixes(split) -> pd.DataFrame:
    """The test rows, plus every test user's first row again with an empty history and other items: several
    users then have identical prefix ids, and only their user slot (code, embedding) tells them apart."""
    test = split.test.reset_index(drop=True)
    first = test.groupby("user_id").head(1)
    empty = pd.concat([first.assign(item_id=(first["item_id"] + k) % (split.n_items - 1) + 1) for k in range(3)])
    empty["history"] = [np.zeros(0, dtype=np.int64)] * len(empty)
    return pd.concat([test, empty], ignore_index=True)


def code_slot(n, seed):
    bits = np.random.default_rng(seed).integers(0, 2, (n, 32))
    return lambda i: bits_to_text(bits[i], "dot_decimal")


def collm_module(model, split, name):
    torch.manual_seed(1)
    cf = collab.build_model(name, split.n_users, split.n_items, **({"dim": 12} if name == "din" else {"dim": 8}))
    module = CoLLM(model, cf, model.config.hidden_size).eval()
    with torch.no_grad():  # large mapped vectors, so a wrongly shared user slot shows in the scores
        for p in module.mapping.parameters():
            p.mul_(20)
    return module


CASES = ["text", "id-codes", "ids_only-codes", "collm-mf", "collm-din"]


def scorers_and_prompts(case, split, model, tok):
    kind = case.split("-")[0] if not case.startswith("collm") else "id"
    if case.startswith("collm"):
        module = collm_module(model, split, case.split("-")[1])
        slots = {"user_slot": lambda u: EMBED, "item_slot": lambda i: EMBED}
    else:
        module = model
        slots = {} if kind == "text" else {"user_slot": code_slot(split.n_users, 0),
                                           "item_slot": code_slot(split.n_items, 1)}
    prompts = ClickPrompts(split, tok, kind, history_titles=3, **slots)

    def scorer(shared: bool, **hooks):
        """The runs' scorer (recipes and Recommender build theirs with scorer_for), or one with other hooks."""
        if hooks:
            return YesScorer(model, tok, ScoringConfig(batch_size=8, prefix_cache=shared), **hooks)
        cfg = load_config(None, ["eval.batch_size=8", f"eval.prefix_cache={shared}"])
        return scorer_for(model, tok, cfg, slots=module if case.startswith("collm") else None)

    return module, prompts, scorer


@pytest.mark.parametrize("case", CASES)
def test_shared_prefix_scores_equal_plain_scores(case, tiny_split, tiny):
    torch.set_num_threads(1)
    model, tok = tiny
    module, prompts, scorer = scorers_and_prompts(case, tiny_split, model, tok)
    frame = rows_with_shared_prefixes(tiny_split)
    ps = prompts.for_frame(frame)
    shared, plain = scorer(True), scorer(False)
    if case != "collm-din":  # DIN's user vector reads the target: nothing to share (next test)
        assert len({shared.prefix_group(p) for p in ps}) < 0.8 * len(ps)  # shared prefixes: a real comparison
    expected = plain.score(ps)
    assert np.abs(plain.rank(ps) - expected).max() == 0  # the switch off: every prompt whole
    assert np.abs(shared.rank(ps) - expected).max() < TOL
    # the evaluation path of training and test (ClickTask + predict_rows) orders rows so prefixes meet in a batch
    task = ClickTask(module, shared, prompts, frame, sort_by_length=True)
    scores = task.unsort(loop.predict_rows(task, len(frame), batch_size=8))
    assert np.abs(scores - expected).max() < TOL
    order = task.order
    keys = [shared.prefix_group(ps[r]) for r in order]
    runs = sum(1 for k in range(len(keys)) if k == 0 or keys[k] != keys[k - 1])
    assert runs == len(set(keys))  # each prefix group is one contiguous run of rows


@pytest.mark.parametrize("case", ["collm-mf", "collm-din"])
def test_collm_prefix_key_keeps_different_user_vectors_apart(case, tiny_split, tiny):
    """Without the key, users with the same prefix ids (empty histories) would share one user vector; with DIN
    the user vector also depends on the target item, so no two rows may share it."""
    model, tok = tiny
    _, prompts, scorer = scorers_and_prompts(case, tiny_split, model, tok)
    ps = prompts.for_frame(rows_with_shared_prefixes(tiny_split))
    expected = scorer(False).score(ps)
    unkeyed = scorer(True, embed_fn=scorer(True).embed_fn, prefix_key=None)
    assert np.abs(unkeyed.rank(ps) - expected).max() > 100 * TOL  # the key matters
    if case == "collm-din":
        assert len({scorer(True).prefix_group(p) for p in ps}) == len(ps)
