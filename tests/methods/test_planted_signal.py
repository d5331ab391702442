"""Planted signal: every click LLM method must learn a label its own input can express, and lose it when the
signal is hidden.

Users and items fall in two groups and a user likes exactly the items of their own group (no noise). BinLLM and
CoLLM see uninformative titles (every title "Film"), so only the collaborative ids carry the label: the encoder /
MF learns the groups and the LLM has to read them from the codes or mapped embeddings. TALLRec sees a title word
per item group ("Alpha" / "Omega"): the label is whether the target's word matches the words of the user's
history. The control scores the same test items with the user side (codes, embedding, history) of a user drawn
at random per row, so the label is independent of what the model reads about the user: AUC must fall to chance.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from llmrec import experiment
from llmrec.data.build import make_dataset
from llmrec.data.splits import click_split
from llmrec.metrics import auc
from llmrec.recommender import Recommender

N_USERS, N_ITEMS, PER_USER = 48, 32, 24
BAR = 0.9
"""Test AUC each method must reach (chance is 0.5; the encoder / MF alone reach about 1.0 on this data)."""
CONTROL = 0.15
"""|AUC - 0.5| allowed once the user side is hidden (about 4 standard errors at ~350 test rows)."""

# The tiny backbone: a random 2-layer Llama (hidden 64) with LoRA r 8 / alpha 16 on q, v (the paper's adapter).
BACKBONE = ["llm.backbone=tiny", "llm.history_titles=3", "llm.lora.r=8", "llm.lora.alpha=16",
            "llm.lora.target_modules=[q_proj, v_proj]", "eval.batch_size=64", "seed=2023"]
# Up to 200 steps of 16 prompts (3,200 samples, ~4.6 passes over 691 train rows), valid AUC on 64 rows every 25
# steps. Reading ids is learnt after a plateau whose length varies with the seed (25 to 150 steps for the
# stage-2 runs), so the stage-2 runs do not stop early on it; TALLRec's words are learnt by step 25.
STAGE = ["batch_size=16", "max_samples=3200", "eval_every=25", "eval_rows=64", "weight_decay=1e-3"]
# Stage 1 of the two-step methods sees only uninformative titles here: 10 steps, enough to exercise the path.
SHORT_STAGE1 = ["stage1.lr=1e-3", "stage1.batch_size=16", "stage1.max_samples=160", "stage1.eval_rows=0"]
CASES = {
    # lr 1e-2: the tiny random model needs a large step to move in 100 steps; the words are learnt by step 50
    "tallrec": ("tallrec", "words", ["stage1.lr=1e-2", "stage1.patience=2", *(f"stage1.{s}" for s in STAGE)]),
    "binllm-binary": ("binllm", "film", ["binllm.code_format=binary"]),
    "binllm-dot-decimal": ("binllm", "film", ["binllm.code_format=dot_decimal"]),
    "binllm-io": ("binllm", "film", ["binllm.prompt=ids_only", "binllm.code_format=dot_decimal"]),
    # targets from the encoder alone (stage2.teacher_weight=1): the labels reach the LLM only through the teacher
    "binllm-io-distilled": ("binllm", "film", ["binllm.prompt=ids_only", "binllm.code_format=dot_decimal",
                                               "stage2.teacher_weight=1.0"]),
    "collm": ("collm", "film", ["collm.collab_model=mf"]),
    # CoLLM reading BinLLM's encoder: the +-1 codes are the mapped embeddings
    "collm-binmf": ("collm", "film", ["collm.collab_model=binmf"]),
}
TWO_STEP = [*SHORT_STAGE1, *(f"stage2.{s}" for s in STAGE), "stage2.patience=8",
            # BinLLM: the encoder (d=32 codes) sees every train row each epoch; 60 epochs learn the two groups
            "binllm.tuning=two_step", "encoder.epochs=60", "encoder.patience=20",
            # CoLLM: MF (paper defaults, d=256), 60 epochs
            "collab.epochs=60", "collab.patience=20"]
# The tiny random model needs larger steps than the paper's 1e-4 / 1e-3 to move within 200 steps. CoLLM trains the
# mapping alone (LoRA frozen) and must find a way through the frozen random layers: at 1e-3 it is still on its
# plateau at step 200 on some seeds, at 2e-3 on 1 of 6, at 5e-3 on none of 7 data seeds.
STAGE2_LR = {"binllm": "stage2.lr=1e-2", "collm": "stage2.lr=5e-3"}


def planted_dataset(titles: str, seed: int = 0):
    """Each user rates PER_USER random items, users' rows interleaved in time (so every user has train, valid
    and test rows): rating 5 when user and item share a group (id parity), else 1."""
    rng = np.random.default_rng(seed)
    pairs = [(u, int(i)) for u in range(N_USERS) for i in rng.choice(N_ITEMS, PER_USER, replace=False)]
    rows = [(f"u{u}", f"i{i}", 5.0 if u % 2 == i % 2 else 1.0, 1_000_000_000 + t)
            for t, (u, i) in enumerate(pairs[k] for k in rng.permutation(len(pairs)))]
    words = {"film": ("Film", "Film"), "words": ("Alpha", "Omega")}[titles]
    items = pd.DataFrame({"item": [f"i{i}" for i in range(N_ITEMS)],
                          "title": [words[i % 2] for i in range(N_ITEMS)], "text": [""] * N_ITEMS})
    inter = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    return make_dataset(f"planted-{titles}", inter, items, "<planted>")


@pytest.fixture(scope="module")
def splits():
    return {t: click_split(planted_dataset(t), cuts=(0.6, 0.7), max_history=10) for t in ("film", "words")}


@pytest.mark.parametrize("case", list(CASES))
def test_method_learns_the_planted_signal_and_loses_it_when_hidden(case, splits, tmp_path):
    torch.set_num_threads(1)
    method, titles, extra = CASES[case]
    overrides = BACKBONE + extra + (TWO_STEP + [STAGE2_LR[method]] if method != "tallrec" else [])
    split = splits[titles]
    metrics = experiment.train(experiment.make_config(method, None, overrides), tmp_path / case, split=split)
    test = split.test
    assert metrics["test"]["rows"] == len(test) > 300
    assert metrics["test"]["auc"] >= BAR, metrics

    rec = Recommender.from_pretrained(tmp_path / case)
    rng = np.random.default_rng(0)
    strangers = rng.integers(1, split.n_users, size=len(test))  # a random user's side for every row
    items = test["item_id"].to_numpy()
    hidden = auc(test["label"].to_numpy(), rec.score(strangers, items, internal_ids=True))
    assert abs(hidden - 0.5) < CONTROL, hidden
    # the same call with the rows' own users still reads the signal (the control differs only in the user side)
    assert auc(test["label"].to_numpy(), rec.score(test["user_id"].to_numpy(), items, internal_ids=True)) >= BAR
