"""Inference from a saved run: "score this pair" and "top-k for this user".

    rec = Recommender.from_pretrained("runs/binllm-ml-100k")
    rec.score(["1", "1"], ["50", "172"])    # scores of (user, item) pairs, in the dataset's own ids
    rec.recommend("1", k=10)                # [(item_id, title, score), ...]
    rec.recommend(1, k=10, internal_ids=True)

`from_pretrained` asks the run's registered method (llmrec.methods.registry) to build its recommender. Every one
shares `llmrec.serving.Serving`: the dataset's own ids in and out, and one rule for users and items the run does
not know (`llmrec.ids`): an error, or with `cold_start="popularity"` the train-popularity fallback. Click runs
give a `llmrec.methods.click_recommender.ClickRecommender`; the ranking families their method's own.
"""
from __future__ import annotations

from pathlib import Path

from llmrec.errors import LlmrecError
from llmrec.methods import registry
from llmrec.runs import open_run
from llmrec.serving import Serving


class Recommender:
    @staticmethod
    def from_pretrained(run_dir: str | Path) -> Serving:
        """The recommender of a finished run: `recommend(user, k, candidates=None)`, `score(users, items)`,
        `evaluate(part)` and the rest of `llmrec.serving.Serving`."""
        run = open_run(run_dir)
        if not run.finished:
            raise LlmrecError(f"{run.path}: the run has not finished (no metrics.json); run its train command again")
        method = registry.get(run.config.method)
        return method.load_recommender(run, method.split_class().load(run.file("split")))
