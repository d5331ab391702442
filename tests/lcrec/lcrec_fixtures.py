"""Helpers for the LC-Rec tests: a synthetic catalogue and index, seeded spread of new token rows."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from llmrec.data.types import SequenceSplit
from llmrec.methods.lcrec.vocab import ItemIndex


def synthetic_index(n_items: int = 30, levels: int = 3, codebook: int = 4, seed: int = 0) -> ItemIndex:
    """Distinct random codes for items 1..n_items-1 (prefixes shared, so the trie branches unevenly)."""
    rng = np.random.default_rng(seed)
    seen, rows = set(), []
    while len(rows) < n_items - 1:
        c = tuple(rng.integers(0, codebook, size=levels).tolist())
        if c not in seen:
            seen.add(c)
            rows.append(c)
    return ItemIndex(np.vstack([np.full((1, levels), -1), np.array(rows)]))


def spread_new_rows(model, token_ids: list[int], seed: int = 0) -> None:
    """Seeded embeddings of std 0.5 for the added tokens, five times their init: widely spread logits, so that
    beam-order comparisons never hinge on float noise between near-tied items."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb[token_ids] = torch.randn(len(token_ids), emb.shape[1], generator=g) * 0.5


def synthetic_split(n_users: int = 12, n_items: int = 25, seed: int = 0) -> SequenceSplit:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, n_users + 1):
        seq = rng.choice(np.arange(1, n_items), size=int(rng.integers(5, 9)), replace=False)
        rows.append({"user_id": u, "train": seq[:-2].astype(np.int64), "valid": int(seq[-2]), "test": int(seq[-1])})
    items = pd.DataFrame({"item_id": np.arange(1, n_items), "title": [f"Movie {i} (199{i % 10})" for i in range(1, n_items)],
                          "text": [["Drama", "Comedy, Action", ""][i % 3] for i in range(1, n_items)]})
    return SequenceSplit(name="synthetic", users=pd.DataFrame(rows), items=items, n_users=n_users + 1,
                         n_items=n_items, meta={})


def planted_split(n_users: int, seed: int, pattern: bool = True, n_items: int = 31) -> SequenceSplit:
    """Sequences of 6-10 items. pattern: every item is followed by its successor on one fixed cycle through the
    whole catalogue (the same cycle for every seed), so the next item is a function of the last one; else the
    items are drawn at random without repeats (the shuffled-target control)."""
    cycle = np.random.default_rng(0).permutation(np.arange(1, n_items))
    successor = np.zeros(n_items, dtype=np.int64)
    successor[cycle] = np.roll(cycle, -1)
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, n_users + 1):
        length = int(rng.integers(6, 11))
        if pattern:
            seq = [int(rng.integers(1, n_items))]
            while len(seq) < length:
                seq.append(int(successor[seq[-1]]))
        else:
            seq = rng.choice(np.arange(1, n_items), size=length, replace=False).tolist()
        rows.append({"user_id": u, "train": np.asarray(seq[:-2], dtype=np.int64), "valid": seq[-2], "test": seq[-1]})
    items = pd.DataFrame({"item_id": np.arange(1, n_items), "title": [f"Item {i}" for i in range(1, n_items)],
                          "text": ""})
    return SequenceSplit(name="planted", users=pd.DataFrame(rows), items=items, n_users=n_users + 1,
                         n_items=n_items, meta={})


def lcrec_experiment(backbone: str = "tiny", seed: int = 2023, **lcrec):
    """The ExperimentConfig of an LC-Rec run: the backbone and seed are the experiment's (llm.backbone, seed), the
    rest its `lcrec` section."""
    from llmrec.config import ExperimentConfig, LLMConfig
    from llmrec.methods.lcrec.config import LCRecConfig

    return ExperimentConfig(method="lcrec", seed=seed, llm=LLMConfig(backbone=backbone), lcrec=LCRecConfig(**lcrec))
