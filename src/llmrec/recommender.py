"""Inference from a saved run: "score this pair" and "top-k for this user".

    rec = Recommender.from_pretrained("runs/binllm-ml-100k")
    rec.score(["1", "1"], ["50", "172"])    # scores of (user, item) pairs, in the dataset's own ids
    rec.recommend("1", k=10)                # [(item_id, title, score), ...]
    rec.recommend(1, k=10, internal_ids=True)

Every run's recommender (this class for click runs, the ranking families' own) shares `llmrec.serving.Serving`:
the dataset's own ids in and out, and one rule for users and items the run does not know (`llmrec.ids`): an
error, or with `cold_start="popularity"` the train-popularity fallback.
Histories are the user's positives in every part of the run's split, oldest first (the user's past as known now);
the users a click run knows are those with rows in its split.
For LLM runs, `recommend` over the whole catalogue first shortlists `pool` candidates (by the run's own
collaborative model where it has one — BinLLM's encoder, CoLLM's collaborative model — else by popularity) and
re-ranks them with the LLM, each user's shared prompt prefix encoded once (YesScorer.rank).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.errors import LlmrecError
from llmrec.ids import RunIds
from llmrec.methods.registry import LLM_METHODS
from llmrec.metrics import frame_metrics
from llmrec.runs import open_run
from llmrec.serving import Serving

class Recommender(Serving):
    def __init__(self, run, split):
        self.run = run
        self.cfg = run.config
        self.split = split
        self.item_titles = split.titles()
        parts = pd.concat([split.train, split.valid, split.test], ignore_index=True).sort_values(
            "timestamp", kind="stable")
        pos = parts[parts["label"] == 1]
        self.history = {int(u): g["item_id"].to_numpy() for u, g in pos.groupby("user_id")}
        self.seen = {int(u): set(g["item_id"].tolist()) for u, g in parts.groupby("user_id")}
        counts = split.train["item_id"].value_counts()
        self.item_popularity = np.zeros(split.n_items)  # train rows per item: the shortlist without a model
        self.item_popularity[counts.index.to_numpy()] = counts.to_numpy()
        self.ids = RunIds.of_split(split, self.seen)
        self.method = self.cfg.method
        self._collab = None  # a collaborative scorer (model or encoder) when the run has one
        self._llm = None

    # -- loading --------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, run_dir: str | Path) -> "Recommender":
        """The run's recommender: this class for click runs; LC-Rec, CLLM4Rec and the ranking baselines return
        their own object with the same `recommend(user, k, candidates=None)` and `evaluate(part)`."""
        from llmrec.data.types import ClickSplit

        from llmrec.methods import registry

        run = open_run(run_dir)
        if not run.finished:
            raise LlmrecError(f"{run.path}: the run has not finished (no metrics.json); run its train command again")
        method = run.config.method
        if registry.family(method) != "click":  # ranking families bring their own recommender
            split = registry.split_class(method).load(run.file("split"))
            return registry.load_recommender(method, run, split)
        rec = cls(run, ClickSplit.load(run.file("split")))
        rec._load()
        return rec

    def _load_collab(self, name: str):
        from llmrec import collab
        from llmrec.methods.binllm.encoder import BinaryEncoder, EncoderConfig

        desc = self.run.load_json(f"{name}.json")["description"]
        if desc.get("class") == "BinaryEncoder":
            from llmrec.config import from_dict
            model = BinaryEncoder(self.split.n_users, self.split.n_items,
                                  from_dict(EncoderConfig, self.cfg.encoder, "encoder"))
        else:
            model = collab.from_description(desc)
            model.prepare(self.split.train)
        model.load_state_dict(self.run.load_tensors(f"{name}.safetensors"))
        return model.eval()

    def _load(self) -> None:
        m = self.cfg.method
        if m not in LLM_METHODS:
            self._collab = self._load_collab("model")
            return
        from llmrec.llm.backbones import load_backbone
        from llmrec.methods.click import load_adapter, scorer_for
        from llmrec.methods.tallrec.recipe import text_prompts

        model, tokenizer = load_backbone(self.cfg.llm.backbone, dtype=self.cfg.llm.dtype)
        if m != "icl":
            model = load_adapter(model, self.run.file("adapter"))
        slots = None
        self.text_prompts = text_prompts(self.split, tokenizer, self.cfg)
        self.prompts = self.text_prompts
        if m == "binllm" and self.cfg.binllm.prompt != "text":
            from llmrec.methods.binllm.recipe import Codes, code_prompts
            self._collab = self._load_collab("encoder")
            self.prompts = code_prompts(self.split, tokenizer, self.cfg, Codes.load(self.run, self.cfg.binllm.code_format))
        elif m == "collm":
            from llmrec.methods.collm.mapping import CoLLM
            from llmrec.methods.collm.recipe import TUNED_COLLAB, embed_prompts
            self._collab = self._load_collab("collab")
            if self.run.has(TUNED_COLLAB):  # collm.tune_collab: stage 2 also tuned the collaborative model
                self._collab.load_state_dict(self.run.load_tensors(TUNED_COLLAB))
            slots = CoLLM(model, self._collab, model.config.hidden_size)
            slots.mapping.load_state_dict(self.run.load_tensors("mapping.safetensors"))
            slots.eval()
            self.prompts = embed_prompts(self.split, tokenizer, self.cfg)
        self._llm = scorer_for(model, tokenizer, self.cfg, slots=slots)

    # -- scoring (known internal ids; llmrec.serving applies the id rule) ---------------------------------------
    def _frame(self, users, items, history_len: int = 50) -> pd.DataFrame:
        empty = np.zeros(0, dtype=np.int64)
        return pd.DataFrame({"user_id": users, "item_id": items, "label": np.zeros(len(users), dtype=np.int8),
                             "history": [self.history.get(int(u), empty)[-history_len:] for u in users]})

    def _collab_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        from llmrec.collab.trainer import predict

        return predict(self._collab, self._frame(users, items))

    def _score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        if self._llm is None:
            return self._collab_scores(users, items)
        return self._llm.rank(self.prompts.for_frame(self._frame(users, items)))

    def _recommend(self, user: int, k: int, candidates, pool: int = 100) -> list[tuple[int, str, float]]:
        """Top-k among `candidates` (default: every item the user has not seen; LLM runs shortlist `pool`)."""
        if candidates is None:
            seen = self.seen.get(user, set())
            candidates = np.array([i for i in range(1, self.split.n_items) if i not in seen], dtype=np.int64)
            if self._llm is not None and len(candidates) > pool:
                candidates = self._shortlist(user, candidates, pool)
        if not len(candidates):
            raise LlmrecError(f"recommend: no candidate items left for user {user} (they have seen them all)")
        scores = self._score(np.full(len(candidates), user), candidates)
        order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")[:k]
        return [(int(candidates[j]), self.item_titles.get(int(candidates[j]), ""), float(scores[j])) for j in order]

    def _shortlist(self, user: int, candidates: np.ndarray, pool: int) -> np.ndarray:
        if self._collab is not None:
            pre = self._collab_scores(np.full(len(candidates), user), candidates)
        else:
            pre = self.item_popularity[candidates]
        return candidates[np.argsort(-pre, kind="stable")[:pool]]

    def score_frame(self, frame: pd.DataFrame, progress: bool = False) -> np.ndarray:
        """Scores of the rows of a click frame (user_id, item_id, history), each with its own history, as in
        training and `evaluate` (`score` uses each user's whole known history instead)."""
        if self._llm is None:
            from llmrec.collab.trainer import predict
            return predict(self._collab, frame)
        return self._llm.rank(self.prompts.for_frame(frame), progress=progress)  # a shared prefix encoded once

    def evaluate(self, part: str = "test") -> dict:
        """AUC / UAUC (overall, warm, cold) with 95% user-bootstrap intervals of the run on a part of its split
        (eval.test_rows applies to test)."""
        from llmrec.methods.click import subset

        frame = self.split.part(part)
        if part == "test":
            frame = subset(frame, self.cfg.eval.test_rows, self.cfg.seed)
        return frame_metrics(frame, self.score_frame(frame, progress=True), intervals=True)
