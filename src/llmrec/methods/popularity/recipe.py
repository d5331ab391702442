"""`popularity` (click family): every item scored by its clicks in the train rows (positive labels), the floor
a click model must clear. Nothing is learned beyond the counts; run files: `popularity.json` (the counts)."""
from __future__ import annotations

import numpy as np

from llmrec.data.types import ClickSplit
from llmrec.methods.click import save_test_scores, subset
from llmrec.methods.click_recommender import ClickRecommender
from llmrec.metrics import frame_metrics


def click_counts(split: ClickSplit) -> np.ndarray:
    """Train clicks per internal item id (0 for items without one)."""
    clicks = split.train.loc[split.train["label"] == 1, "item_id"].value_counts()
    counts = np.zeros(split.n_items)
    counts[clicks.index.to_numpy()] = clicks.to_numpy()
    return counts


def train(cfg, split: ClickSplit, run, tracker=None) -> dict:
    """Count, then score the same (subset of) test rows as every click method, with intervals."""
    counts = click_counts(split)
    run.save_json("popularity.json", {"counts": counts.tolist()})
    rows = subset(split.test, cfg.eval.test_rows, cfg.seed)
    scores = counts[rows["item_id"].to_numpy()]
    save_test_scores(run, rows, scores)
    return {"test": frame_metrics(rows, scores, intervals=True)}


def load_recommender(run, split: ClickSplit) -> ClickRecommender:
    counts = np.asarray(run.load_json("popularity.json")["counts"], dtype=np.float64)
    return ClickRecommender(run, split, collab=lambda frame: counts[frame["item_id"].to_numpy()])
