"""Inference with a trained CLLM4Rec: top-k items for a known user, or for a new user from a few items.

Both go through the fine-tuning prompt "<user_i> has interacted with <items>, <user_i> will interact with" and one
forward pass; the hidden state at the last token scores every item against the collaborative item table.
- Known user: the prompt lists the user's train items (the fixed seeded order used at evaluation).
- New user (no retraining): the prompt lists the given items and its user token is `<user_0>` (the reserved id,
  never trained) whose embedding is replaced by a stand-in: `new_user="mean"` (default) the mean of the trained
  collaborative user embeddings, `"zero"` a zero vector.
Items already known for the user (train items, or the given items) are excluded from the ranking, also from
`candidates`; the padding id 0 never appears. Results are (item id, title, score) with score = the item logit.
"""
from __future__ import annotations


import numpy as np
import pandas as pd
import torch

from llmrec.data.holdout import HoldoutSplit
from llmrec.metrics import holdout_metrics as ranking_metrics
from llmrec.errors import LlmrecError
from llmrec.ids import RunIds
from llmrec.methods.cllm4rec.config import NEW_USER, CLLM4RecConfig
from llmrec.methods.cllm4rec.documents import recommendation_prompt
from llmrec.methods.cllm4rec.model import CLLM4RecModel
from llmrec.methods.cllm4rec.tasks import RankTask, pad_right
from llmrec.methods.cllm4rec.tokens import IdVocab
from llmrec.methods.holdout import top_unseen
from llmrec.serving import Serving


class CLLM4Rec(Serving):
    """A trained model with what inference needs: vocabulary, per-user train items, item titles (and the split,
    when loaded from a run, for `evaluate`)."""

    def __init__(self, model: CLLM4RecModel, vocab: IdVocab, train_items: list[np.ndarray], config: CLLM4RecConfig,
                 pad_id: int, items: pd.DataFrame | None = None, split: HoldoutSplit | None = None, seed: int = 2023):
        self.model, self.vocab, self.train_items, self.config, self.pad_id = model, vocab, train_items, config, pad_id
        self.seed = seed
        self.items = items
        self.split = split
        self.item_titles = {} if items is None else dict(zip(items["item_id"].tolist(), items["title"].tolist()))
        self.method = "cllm4rec"
        self.item_popularity = np.bincount(np.concatenate([np.zeros(0, dtype=np.int64), *train_items]),
                                           minlength=model.n_items)
        known = range(1, model.n_users)
        self.ids = RunIds.of_split(split, known) if split is not None else RunIds(model.n_users, model.n_items, known)
        self._ranker = RankTask(model, vocab, np.zeros(0, dtype=np.int64), train_items, 1, config.max_prompt_items,
                                pad_id, seed)

    @classmethod
    def load(cls, run, device: str = "cpu", split: HoldoutSplit | None = None) -> "CLLM4Rec":
        """A finished CLLM4Rec run (a `Run` or its directory): config.yaml, model.safetensors and the run's split
        (read from split/ unless given)."""
        from safetensors.torch import load_file

        from llmrec.methods.cllm4rec.recipe import MODEL_FILE, build_model
        from llmrec.runs import Run, open_run

        run = run if isinstance(run, Run) else open_run(run)
        if not run.has(MODEL_FILE):
            raise LlmrecError(f"{run.path}: not a finished CLLM4Rec run (no {MODEL_FILE})")
        experiment = run.config
        config = experiment.cllm4rec
        split = split if split is not None else HoldoutSplit.load(run.file("split"))
        model, vocab, tokenizer = build_model(config, split.n_users, split.n_items, device,
                                              backbone=experiment.llm.backbone, dtype=experiment.llm.dtype,
                                              seed=experiment.seed)
        saved = load_file(str(run.file(MODEL_FILE)))
        missing, unexpected = model.load_state_dict(saved, strict=False)
        wanted = [n for n in missing if not n.startswith("backbone.") or "lora_" in n]
        if wanted or unexpected:
            raise LlmrecError(f"{run.file(MODEL_FILE)}: does not match the model "
                              f"(missing {wanted[:3]}, unexpected {list(unexpected)[:3]})")
        model.eval()
        return cls(model, vocab, split.user_items("train"), config, tokenizer.pad_token_id, split.items, split,
                   experiment.seed)

    def _device(self):
        return self.model.collab.item.weight.device

    @torch.no_grad()
    def _scores(self, prompts: list[list[int]], user_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """[len(prompts), n_items] item logits (id 0 at -inf) on the CPU."""
        ids, mask = pad_right(prompts, self.pad_id)
        dev = self._device()
        h = self.model.last_hidden(ids.to(dev), mask.to(dev), "collab",
                                   None if user_vectors is None else user_vectors.to(dev))
        return self.model.item_logits(h, "collab").float().cpu()

    def _top(self, scores: torch.Tensor, seen: np.ndarray, k: int, candidates) -> list[tuple[int, str, float]]:
        return top_unseen(scores, seen, k, candidates, self.item_titles)

    def _user_scores(self, user: int) -> torch.Tensor:
        prompt = recommendation_prompt(self.vocab, user, self._ranker.prompt_items(user))
        return self._scores([prompt])[0]

    def _recommend(self, user: int, k: int, candidates) -> list[tuple[int, str, float]]:
        """Top-k (item id, title, score) for a user of the training data (their train items form the prompt and
        are excluded); `candidates` restricts the ranking to those item ids."""
        return self._top(self._user_scores(user), self.train_items[user], k, candidates)

    def _score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The item logit after the user's fine-tuning prompt (the score `recommend` ranks by)."""
        out = np.zeros(len(users))
        for u in np.unique(users):
            at = users == u
            out[at] = self._user_scores(int(u)).numpy()[items[at]]
        return out

    def _recommend_for_items(self, items: np.ndarray, k: int, candidates, new_user: str | None = None
                             ) -> list[tuple[int, str, float]]:
        """Top-k (item id, title, score) for a user unknown at training time who has interacted with `items`
        (most recent last), through the fine-tuning prompt, without retraining; `items` are excluded."""
        how = new_user or self.config.new_user
        if how not in NEW_USER:
            raise LlmrecError(f"new_user: expected one of {', '.join(NEW_USER)}, got {how!r}")
        vec = self.model.mean_user_vector().detach()
        if how == "zero":
            vec = torch.zeros_like(vec)
        limit = self.config.max_prompt_items
        shown = items if limit is None else items[-limit:]  # the most recent ones when too many
        prompt = recommendation_prompt(self.vocab, 0, shown)
        return self._top(self._scores([prompt], vec[None])[0], items, k, candidates)

    def ranked(self, part: str = "test") -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """(users, their held-out items, their top items) for every user with items in `part` of the run's split:
        what `evaluate` scores, and what a per-user comparison of two runs reads (bench/paired_holdout.py)."""
        from llmrec.methods.cllm4rec.recipe import rank_users

        if self.split is None:
            raise LlmrecError("evaluate: this model was loaded without its split (load it from the run)")
        if part not in ("valid", "test"):
            raise LlmrecError(f"evaluate on 'valid' or 'test', not {part!r}")
        users = self.split.eval_users(part)
        if not len(users):
            raise LlmrecError(f"{self.split.name}: no user has {part} items to evaluate")
        held = self.split.user_items(part)
        top = rank_users(self.model, self.vocab, users, self.train_items, self.config, self.pad_id, self.seed)
        return users, [held[u] for u in users], top

    def evaluate(self, part: str = "test") -> dict:
        """Full-ranking Recall@20, Recall@40, NDCG@100 on every user with items in `part` of the run's split, each
        with its bootstrap interval over users."""
        _, held, top = self.ranked(part)
        return ranking_metrics(top, held, intervals=True)


def load_recommender(run, split: HoldoutSplit) -> CLLM4Rec:
    """The trained CLLM4Rec of a finished run: `recommend(user, k, candidates)`, `recommend_for_items(items, k)`,
    `evaluate(part)`."""
    return CLLM4Rec.load(run, device="auto", split=split)
