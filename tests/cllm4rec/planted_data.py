"""Synthetic data with a planted taste-group pattern for the CLLM4Rec / Mult-VAE tests (a plain module:
`conftest` names clash across test folders)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from llmrec.data.build import make_dataset


def planted_dataset(n_users=60, n_items=40, n_groups=2, per_user=14, noise=2, seed=0, name="planted"):
    """Users in `n_groups` groups; each group likes (rating 5) a disjoint block of items, plus a few random
    low-rated items (rating 1..3, dropped by the > 3 threshold). Popularity is flat inside the blocks, so only a
    model that reads who-liked-what can rank a user's own block first."""
    rng = np.random.default_rng(seed)
    block = n_items // n_groups
    rows = []
    for u in range(1, n_users + 1):
        g = (u - 1) % n_groups
        liked = rng.choice(np.arange(g * block, (g + 1) * block) + 1, per_user, replace=False)
        rows += [(u, int(i), 5.0) for i in liked]
        rows += [(u, int(i), float(rng.integers(1, 4))) for i in rng.choice(np.arange(1, n_items + 1), noise)]
    raw = pd.DataFrame(rows, columns=["user", "item", "rating"])
    raw["timestamp"] = np.arange(len(raw)) + 1_000_000_000
    items = pd.DataFrame({"item": np.arange(1, n_items + 1), "title": [f"Film {i}" for i in range(1, n_items + 1)],
                          "text": ["Drama" if i <= block else "Comedy" for i in range(1, n_items + 1)]})
    return make_dataset(name, raw, items, "synthetic")


def chance_recall(split, part: str, k: int) -> float:
    """Expected Recall@k of a uniformly random ranking of each user's unseen items (k / unseen items, at most 1,
    for users with at most k held-out items)."""
    train = split.user_items("train")
    users = split.eval_users(part)
    return float(np.mean([min(1.0, k / (split.n_items - 1 - len(train[u]))) for u in users]))


def cllm4rec_experiment(backbone: str = "tiny", seed: int = 2023, **cllm4rec):
    """The ExperimentConfig of a CLLM4Rec run: backbone and seed are the experiment's (llm.backbone, seed), the rest
    its `cllm4rec` section."""
    from llmrec.config import ExperimentConfig, LLMConfig
    from llmrec.methods.cllm4rec.config import CLLM4RecConfig

    return ExperimentConfig(method="cllm4rec", seed=seed, llm=LLMConfig(backbone=backbone),
                            cllm4rec=CLLM4RecConfig(**cllm4rec))
