"""CLLM4Rec's three `llmrec.llm.train.Task`s: pre-training batches, recommendation fine-tuning, ranking.

- `PretrainTask`: a row is one ready-made batch of documents of ONE kind (collaborative or content), grouped by
  length; `fit` shuffles the batches (train it with batch_size 1 per process). A collaborative batch updates the
  collaborative tables with the content tables held fixed, a content batch the reverse: alternating optimisation.
  Several rows in one call give the mean of their losses, so one process with batch_size P equals P processes
  with batch_size 1 (DDP averages the gradients the same way).
- `RecommendTask`: a row is a (user, draw) pair: row r is user r % U in draw r // U (U users, `draws` of each).
  The draw seeds which random `heldout_ratio` of the user's train items leaves the prompt; the multinomial
  likelihood is over all the user's train items (target "all", the official code) or over the held-out ones only
  (target "heldout"), plus (optionally) the mutual regulariser toward the fixed content tables. Deriving the randomness from the row (not a global RNG) is `fit`'s contract: the
  batches are then identical on any number of processes, in DataLoader workers and after a resume.
- `RankTask`: evaluation through `fit`'s one-score-per-row protocol: row r is position r % k of user r // k's
  top-k list, and its "score" is the item id ranked there (exact in float32 up to 2^24 items). The prompt lists
  the user's train items (a fixed seeded order), train items are excluded from the ranking.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from llmrec.data.holdout import exclusion_mask, top_items
from llmrec.errors import LlmrecError
from llmrec.methods.cllm4rec.config import FINETUNE_TARGETS, REG_REDUCTIONS
from llmrec.methods.cllm4rec.documents import Document, recommendation_prompt, subset
from llmrec.methods.cllm4rec.model import CLLM4RecModel
from llmrec.methods.cllm4rec.tokens import IdVocab

IGNORE = -100


def reduce_reg(per_row: torch.Tensor, reduction: str) -> torch.Tensor:
    """The regulariser of a batch from its per-document values: "sum" (official) or "mean" over the documents."""
    if reduction not in REG_REDUCTIONS:
        raise LlmrecError(f"regulariser reduction must be one of {REG_REDUCTIONS}, got {reduction!r}")
    return per_row.sum() if reduction == "sum" else per_row.mean()


def pad_right(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids [B, T], attention mask [B, T]) of right-padded sequences."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, :len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[r, :len(s)] = 1
    return ids, mask


def document_batches(docs: list[Document], batch_size: int, seed: int) -> list[list[int]]:
    """Indices of `docs` in batches of one kind and similar length (shuffled among equal lengths)."""
    batches = []
    for kind in ("collab", "content"):
        idx = [k for k, d in enumerate(docs) if d.kind == kind]
        rng = np.random.default_rng([seed, 3, len(batches)])
        idx = [idx[k] for k in rng.permutation(len(idx))]
        idx.sort(key=lambda k: len(docs[k].prompt) + len(docs[k].main))  # stable: random among equal lengths
        batches += [idx[a:a + batch_size] for a in range(0, len(idx), batch_size)]
    return batches


class PretrainTask:
    """Collaborative / content LM losses with mutual regularisation; one row = one ready-made batch."""

    def __init__(self, model: CLLM4RecModel, vocab: IdVocab, docs: list[Document], batches: list[list[int]],
                 lambda_reg: float, pad_id: int, reg_reduction: str = "sum"):
        self.model, self.vocab, self.docs, self.batches = model, vocab, docs, batches
        self.lambda_reg, self.pad_id, self.reg_reduction = lambda_reg, pad_id, reg_reduction

    def trainable_module(self) -> torch.nn.Module:
        return self.model

    def collate(self, rows: list[int]) -> dict:
        """One sub-batch per row (each of one document kind)."""
        parts = [self._collate_one(r) for r in rows]
        return {"parts": parts, "n_tokens": sum(int(p["mask"].sum()) for p in parts)}

    def _collate_one(self, row: int) -> dict:
        docs = [self.docs[k] for k in self.batches[row]]
        kinds = {d.kind for d in docs}
        if len(kinds) != 1:
            raise LlmrecError(f"PretrainTask: batch {row} mixes document kinds")
        ids, mask = pad_right([d.prompt + d.main for d in docs], self.pad_id)
        labels = torch.full_like(ids, IGNORE)
        for r, d in enumerate(docs):  # position t predicts token t + 1; the last prompt token predicts main[0]
            p = len(d.prompt)
            labels[r, p - 1:p - 1 + len(d.main)] = torch.as_tensor(d.main)
        return {"ids": ids, "mask": mask, "labels": labels, "collab": torch.tensor(kinds == {"collab"})}

    def loss(self, batch: dict) -> torch.Tensor:
        losses = [lm_loss(self.model, p["ids"], p["mask"], p["labels"], "collab" if bool(p["collab"]) else "content",
                          self.lambda_reg, self.reg_reduction) for p in batch["parts"]]
        return torch.stack(losses).mean()

    def predict(self, batch: dict) -> torch.Tensor:
        raise LlmrecError("PretrainTask has no evaluation scores")


def lm_loss(model: CLLM4RecModel, ids, mask, labels, side: str, lambda_reg: float,
            reg_reduction: str = "sum") -> torch.Tensor:
    """Mean cross-entropy of the main tokens (over items for the collaborative side, over the vocabulary for the
    content side) + lambda x the per-document mutual regulariser summed (or averaged) over the documents."""
    h = model.hidden(ids, mask, side)
    at = labels != IGNORE
    if side == "collab":
        logits = model.item_logits(h[at], "collab")
        target = labels[at] - model.vocab_size - model.n_users
    else:
        logits = model.vocab_logits(h[at])
        target = labels[at]
    loss = F.cross_entropy(logits.float(), target)
    if lambda_reg:
        loss = loss + lambda_reg * reduce_reg(model.regulariser(ids, side), reg_reduction)
    return loss


class RecommendTask:
    """Multinomial recommendation fine-tuning of the collaborative side; one row = one (user, draw).

    teacher_probs [n_users, n_items], teacher_weight w (`CLLM4RecConfig.teacher_weight`, ours): a user's target
    becomes (1 - w) x their target items + w x (as many) x the teacher's distribution (`teacher.py`)."""

    def __init__(self, model: CLLM4RecModel, vocab: IdVocab, users: np.ndarray, train_items: list[np.ndarray],
                 heldout_ratio: float, target: str, max_prompt_items: int | None, lambda_reg: float, pad_id: int,
                 seed: int = 0, draws: int = 1, reg_reduction: str = "sum", lora_lr: float | None = None,
                 teacher_probs: torch.Tensor | None = None, teacher_weight: float = 0.0):
        if draws < 1:
            raise LlmrecError(f"RecommendTask: draws must be >= 1, got {draws}")
        if target not in FINETUNE_TARGETS:
            raise LlmrecError(f"RecommendTask: target must be one of {FINETUNE_TARGETS}, got {target!r}")
        self.reg_reduction = reg_reduction
        self.model, self.vocab, self.users, self.train_items = model, vocab, np.asarray(users), train_items
        self.heldout_ratio, self.target, self.max_prompt_items = heldout_ratio, target, max_prompt_items
        self.lambda_reg, self.pad_id, self.seed, self.draws = lambda_reg, pad_id, seed, draws
        self.lora_lr = lora_lr
        self.teacher_probs = teacher_probs if teacher_weight > 0 else None
        self.teacher_weight = teacher_weight

    @property
    def n_rows(self) -> int:
        """Rows of the table: every user `draws` times."""
        return len(self.users) * self.draws

    def param_groups(self) -> list[dict]:
        """The LoRA adapters at their own rate when `lora_lr` is set (llmrec.llm.train.fit's task groups);
        everything else trains at the loop's lr."""
        if self.lora_lr is None:
            return []
        lora = [p for n, p in self.model.named_parameters() if p.requires_grad and "lora_" in n]
        return [{"params": lora, "lr": self.lora_lr}] if lora else []

    def trainable_module(self) -> torch.nn.Module:
        return self.model

    def collate(self, rows: list[int]) -> dict:
        seqs, targets, users = [], [], []
        for r in rows:
            draw, slot = divmod(int(r), len(self.users))
            user = int(self.users[slot])
            users.append(user)
            items = self.train_items[user]
            perm = items[np.random.default_rng([self.seed, 6, user, draw]).permutation(len(items))]
            n_out = max(1, int(self.heldout_ratio * len(items)))  # floor, as the official code
            shown, held = perm[n_out:], perm[:n_out]
            if self.max_prompt_items is not None and len(shown) > self.max_prompt_items:
                shown = shown[:self.max_prompt_items]  # already in random order
            seqs.append(recommendation_prompt(self.vocab, user, shown))
            targets.append(held if self.target == "heldout" else items)
        ids, mask = pad_right(seqs, self.pad_id)
        tgt, tmask = pad_right([list(t) for t in targets], 0)
        batch = {"ids": ids, "mask": mask, "targets": tgt, "target_mask": tmask, "n_tokens": int(mask.sum())}
        if self.teacher_probs is not None:
            batch["teacher"] = self.teacher_probs[torch.as_tensor(users)]
        return batch

    def loss(self, batch: dict) -> torch.Tensor:
        m = self.model
        h = m.last_hidden(batch["ids"], batch["mask"], "collab")
        logp = F.log_softmax(m.item_logits(h, "collab").float(), dim=-1)
        # padding targets point at id 0 (log-prob -inf): selected away, never multiplied (0 x -inf is NaN)
        picked = torch.where(batch["target_mask"].bool(), logp.gather(1, batch["targets"]), 0.0)
        nll = -picked.sum(1)
        if self.teacher_probs is not None:
            q = batch["teacher"]
            soft = -(q * logp.masked_fill(q <= 0, 0.0)).sum(1) * batch["target_mask"].sum(1)
            nll = (1 - self.teacher_weight) * nll + self.teacher_weight * soft
        loss = nll.mean()
        if self.lambda_reg:
            item_tokens = torch.where(batch["target_mask"].bool(), batch["targets"] + self.vocab.item_base, 0)
            both = torch.cat([batch["ids"], item_tokens], 1)
            loss = loss + self.lambda_reg * reduce_reg(m.regulariser(both, "collab"), self.reg_reduction)
        return loss

    def predict(self, batch: dict) -> torch.Tensor:
        raise LlmrecError("RecommendTask is evaluated through RankTask")


class RankTask:
    """Top-k item ids of users, one row per (user, rank position), for `fit` / `predict_rows`."""

    def __init__(self, model: CLLM4RecModel, vocab: IdVocab, users: np.ndarray, train_items: list[np.ndarray],
                 k: int, max_prompt_items: int | None, pad_id: int, seed: int):
        if model.n_items > 2 ** 24:
            raise LlmrecError(f"RankTask: {model.n_items} items do not fit float32 scores exactly")
        self.model, self.vocab, self.users, self.train_items = model, vocab, np.asarray(users), train_items
        self.k, self.max_prompt_items, self.pad_id, self.seed = k, max_prompt_items, pad_id, seed

    @property
    def n_rows(self) -> int:
        return len(self.users) * self.k

    def trainable_module(self) -> torch.nn.Module:
        return self.model

    def prompt_items(self, user: int) -> np.ndarray:
        """The user's train items in a fixed seeded order (a fixed subset when capped)."""
        items = self.train_items[user]
        rng = np.random.default_rng([self.seed, 4, user])
        return subset(items[rng.permutation(len(items))], self.max_prompt_items, rng)

    def collate(self, rows: list[int]) -> dict:
        slots = [r // self.k for r in rows]
        uniq = sorted(set(slots))
        users = [int(self.users[s]) for s in uniq]
        ids, mask = pad_right([recommendation_prompt(self.vocab, u, self.prompt_items(u)) for u in users],
                              self.pad_id)
        where = {s: n for n, s in enumerate(uniq)}
        return {"ids": ids, "mask": mask, "exclude": exclusion_mask([self.train_items[u] for u in users],
                                                                    self.model.n_items),
                "row_user": torch.tensor([where[s] for s in slots]), "row_pos": torch.tensor([r % self.k for r in rows])}

    def predict(self, batch: dict) -> torch.Tensor:
        h = self.model.last_hidden(batch["ids"], batch["mask"], "collab")
        top = top_items(self.model.item_logits(h, "collab"), batch["exclude"], self.k)
        return top[batch["row_user"], batch["row_pos"]].float()

    def loss(self, batch: dict) -> torch.Tensor:
        raise LlmrecError("RankTask is for evaluation only")

    def topk(self, scores: np.ndarray) -> np.ndarray:
        """`predict_rows` output -> [users, k] item ids."""
        return np.asarray(scores).reshape(len(self.users), self.k).round().astype(np.int64)
