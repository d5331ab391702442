"""Tiny synthetic click data with planted signals, and tiny model settings, for the collab tests."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

# Small versions of each model: seconds on CPU.
TINY = {
    "mf": {"dim": 8, "init_std": 0.1, "lr": 0.05, "weight_decay": 0.0},
    "lightgcn": {"dim": 8, "lr": 0.05, "weight_decay": 0.0},
    "sasrec": {"dim": 16, "max_len": 8, "dropout": 0.1, "lr": 0.02, "weight_decay": 0.0},
    "din": {"dim": 24, "attention_hidden": [8, 4], "mlp_hidden": [16, 8], "history_length": 6, "dropout": 0.1,
            "lr": 0.01, "weight_decay": 0.0},
}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and a shared machine's busy cores make two threads crawl."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _frame(users, items, labels, histories, warm=None) -> pd.DataFrame:
    n = len(users)
    return pd.DataFrame({
        "user_id": np.asarray(users, np.int64), "item_id": np.asarray(items, np.int64),
        "label": np.asarray(labels, np.int8), "timestamp": np.arange(n, dtype=np.int64),
        "history": [np.asarray(h, np.int64) for h in histories],
        "warm": np.ones(n, bool) if warm is None else np.asarray(warm, bool),
        "not_cold": np.ones(n, bool)})


def latent_frames(n_users=40, n_items=50, rows=3000, seed=0):
    """Label = [<u, v> > 0] for hidden 3-d user/item vectors: learnable from ids alone (MF, LightGCN)."""
    rng = np.random.default_rng(seed)
    U, V = rng.normal(size=(n_users, 3)), rng.normal(size=(n_items, 3))
    users = rng.integers(1, n_users, rows)
    items = rng.integers(1, n_items, rows)
    labels = (np.einsum("nd,nd->n", U[users], V[items]) > 0).astype(np.int8)
    histories = [rng.integers(1, n_items, rng.integers(0, 5)) for _ in range(rows)]
    df = _frame(users, items, labels, histories, warm=rng.random(rows) < 0.5)
    cut1, cut2 = int(rows * 0.7), int(rows * 0.85)
    return df.iloc[:cut1].reset_index(drop=True), df.iloc[cut1:cut2].reset_index(drop=True), \
        df.iloc[cut2:].reset_index(drop=True), n_users, n_items


def history_frames(n_users=30, n_items=41, rows=3000, clusters=4, seed=0):
    """Items fall into `clusters` groups (id % clusters); each history mostly holds one group, and the label says
    whether the target is from that group. User ids carry no signal: only the history does (SASRec, DIN)."""
    rng = np.random.default_rng(seed)
    by_cluster = [np.arange(1, n_items)[np.arange(1, n_items) % clusters == c] for c in range(clusters)]
    users, items, labels, histories = [], [], [], []
    for _ in range(rows):
        c = rng.integers(clusters)
        length = rng.integers(3, 9)
        hist = rng.choice(by_cluster[c], length)
        noise = rng.random(length) < 0.15
        hist[noise] = rng.integers(1, n_items, noise.sum())
        target = rng.integers(1, n_items)
        users.append(rng.integers(1, n_users)); items.append(target); histories.append(hist)
        labels.append(int(target % clusters == c))
    df = _frame(users, items, labels, histories)
    cut1, cut2 = int(rows * 0.7), int(rows * 0.85)
    return df.iloc[:cut1].reset_index(drop=True), df.iloc[cut1:cut2].reset_index(drop=True), \
        df.iloc[cut2:].reset_index(drop=True), n_users, n_items


@pytest.fixture(scope="session")
def tiny():
    return TINY


@pytest.fixture(scope="session")
def latent():
    return latent_frames()


@pytest.fixture(scope="session")
def sequential():
    return history_frames()
