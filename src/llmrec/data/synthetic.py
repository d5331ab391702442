"""A small generated dataset with a planted signal, for the test suite and the benchmark's smoke run (no files)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.data.build import make_dataset
from llmrec.data.types import Dataset


def synthetic_dataset(n_users: int = 40, n_items: int = 30, per_user: int = 20, seed: int = 0) -> Dataset:
    """Users and items fall in two taste groups; a user rates items of their own group high (4-5), others low."""
    rng = np.random.default_rng(seed)
    rows, t = [], 1_000_000_000
    for u in range(n_users):
        for i in rng.choice(n_items, size=per_user, replace=False):
            like = (u % 2) == (i % 2)
            rating = rng.choice([4, 5]) if like == (rng.random() > 0.1) else rng.choice([1, 2])
            t += int(rng.integers(1, 1000))
            rows.append((f"u{u}", f"i{i}", float(rating), t))
    inter = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    genre = {0: "Comedy", 1: "Drama"}
    items = pd.DataFrame({"item": [f"i{i}" for i in range(n_items)],
                          "title": [f"Film {i} ({1990 + i % 10})" for i in range(n_items)],
                          "text": [genre[i % 2] for i in range(n_items)]})
    return make_dataset("synthetic", inter, items, "<synthetic>")


CSV_OPTIONS = "data.options={rating: rating, timestamp: timestamp, title: title}"
"""The loader options that read `write_ratings_csv`'s file (data.dataset=csv)."""


def write_ratings_csv(path: Path) -> Path:
    """The synthetic dataset's interactions with their titles as a CSV (internal ids as the raw ids)."""
    ds = synthetic_dataset()
    inter = ds.interactions.copy()
    inter["title"] = inter["item_id"].map(ds.titles())
    inter.to_csv(path, index=False)
    return path
