"""Inference with a trained CLLM4Rec: top-k items for a known user, or for a new user from a few items.

Both go through the fine-tuning prompt "<user_i> has interacted with <items>, <user_i> will interact with" and one
forward pass; the hidden state at the last token scores every item against the collaborative item table.
- Known user: the prompt lists the user's train items (the fixed seeded order used at evaluation).
- New user (no retraining): the prompt lists the given items and its user token is `<user_0>` (the reserved id,
  never trained) whose embedding is replaced by a stand-in: `new_user="mean"` (default) the mean of the trained
  collaborative user embeddings, `"zero"` a zero vector.
Items already in the prompt's history are excluded unless `exclude_seen=False`; the padding id 0 never appears.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from llmrec.data.holdout import exclusion_mask, top_items
from llmrec.errors import LlmrecError
from llmrec.methods.cllm4rec.config import NEW_USER, CLLM4RecConfig
from llmrec.methods.cllm4rec.documents import recommendation_prompt
from llmrec.methods.cllm4rec.model import CLLM4RecModel
from llmrec.methods.cllm4rec.tasks import RankTask, pad_right
from llmrec.methods.cllm4rec.tokens import IdVocab


class CLLM4Rec:
    """A trained model with what inference needs: vocabulary, per-user train items, item titles."""

    def __init__(self, model: CLLM4RecModel, vocab: IdVocab, train_items: list[np.ndarray], config: CLLM4RecConfig,
                 pad_id: int, items: pd.DataFrame | None = None):
        self.model, self.vocab, self.train_items, self.config, self.pad_id = model, vocab, train_items, config, pad_id
        self.items = items
        self._ranker = RankTask(model, vocab, np.zeros(0, dtype=np.int64), train_items, 1, config.max_prompt_items,
                                pad_id, config.seed)

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "cpu") -> "CLLM4Rec":
        """A finished run directory of `train_cllm4rec` (config.json, model.safetensors, train/items parquet)."""
        from safetensors.torch import load_file

        from llmrec.methods.cllm4rec.recipe import build_model

        run_dir = Path(run_dir)
        for name in ("config.json", "model.safetensors", "train.parquet", "items.parquet"):
            if not (run_dir / name).is_file():
                raise LlmrecError(f"{run_dir}: not a finished CLLM4Rec run (no {name})")
        identity = json.loads((run_dir / "config.json").read_text())
        config = CLLM4RecConfig.from_dict(identity["config"])
        n_users, n_items = identity["split"]["n_users"], identity["split"]["n_items"]
        model, vocab, tokenizer = build_model(config, n_users, n_items, device)
        saved = load_file(str(run_dir / "model.safetensors"))
        missing, unexpected = model.load_state_dict(saved, strict=False)
        wanted = [n for n in missing if not n.startswith("backbone.") or "lora_" in n]
        if wanted or unexpected:
            raise LlmrecError(f"{run_dir}/model.safetensors: does not match the model "
                              f"(missing {wanted[:3]}, unexpected {list(unexpected)[:3]})")
        model.eval()
        train = pd.read_parquet(run_dir / "train.parquet")
        lists = [np.zeros(0, dtype=np.int64) for _ in range(n_users)]
        for user, frame in train.groupby("user_id", sort=False):
            lists[int(user)] = frame["item_id"].to_numpy(np.int64)
        return cls(model, vocab, lists, config, tokenizer.pad_token_id, pd.read_parquet(run_dir / "items.parquet"))

    def _device(self):
        return self.model.collab.item.weight.device

    @torch.no_grad()
    def _top(self, prompts: list[list[int]], seen: list[np.ndarray], k: int, exclude_seen: bool,
             user_vectors: torch.Tensor | None = None) -> list[list[int]]:
        ids, mask = pad_right(prompts, self.pad_id)
        dev = self._device()
        h = self.model.last_hidden(ids.to(dev), mask.to(dev), "collab",
                                   None if user_vectors is None else user_vectors.to(dev))
        exclude = exclusion_mask(seen if exclude_seen else [np.zeros(0, dtype=np.int64)] * len(seen),
                                 self.model.n_items)
        k = min(k, int((~exclude).sum(1).min()))  # never pad the list with excluded items
        return top_items(self.model.item_logits(h, "collab"), exclude, k).cpu().tolist()

    def recommend(self, user_id: int, k: int = 10, exclude_seen: bool = True) -> list[int]:
        """Top-k item ids for a user of the training data (their train items form the prompt)."""
        if not 1 <= int(user_id) < self.model.n_users:
            raise LlmrecError(f"user id {user_id} outside the trained users 1..{self.model.n_users - 1}; "
                              "use recommend_new_user(items) for a new user")
        user_id = int(user_id)
        prompt = recommendation_prompt(self.vocab, user_id, self._ranker.prompt_items(user_id))
        return self._top([prompt], [self.train_items[user_id]], k, exclude_seen)[0]

    def recommend_new_user(self, items, k: int = 10, exclude_seen: bool = True, new_user: str | None = None
                           ) -> list[int]:
        """Top-k item ids for a user unknown at training time who has interacted with `items` (no retraining)."""
        items = np.asarray([int(j) for j in items], dtype=np.int64)
        bad = items[(items < 1) | (items >= self.model.n_items)]
        if len(bad):
            raise LlmrecError(f"item id {int(bad[0])} outside the trained items 1..{self.model.n_items - 1}")
        how = new_user or self.config.new_user
        if how not in NEW_USER:
            raise LlmrecError(f"new_user: expected one of {', '.join(NEW_USER)}, got {how!r}")
        vec = self.model.mean_user_vector() if how == "mean" else torch.zeros_like(self.model.mean_user_vector())
        limit = self.config.max_prompt_items
        shown = items if limit is None else items[-limit:]  # the most recent ones when too many
        prompt = recommendation_prompt(self.vocab, 0, shown)
        return self._top([prompt], [items], k, exclude_seen, vec[None])[0]

    def titles(self, item_ids) -> list[str]:
        if self.items is None:
            return [str(i) for i in item_ids]
        t = dict(zip(self.items["item_id"].tolist(), self.items["title"].tolist()))
        return [t.get(int(i), str(i)) for i in item_ids]
