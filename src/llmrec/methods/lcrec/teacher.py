"""Distillation targets for LC-Rec's next-item tokens from a SASRec teacher (`LCRecConfig.teacher_weight`, ours).

A next-item sample trains each index token of its target item on the one observed token. With a teacher, the
target of the token at level l becomes the teacher's belief about that token given the true item's first l tokens:

    q_l(c) = sum of q(i) over items i whose index continues the true prefix with c  /  same sum over all c,

where q is SASRec's softmax over the catalogue after the same history (items already in the history get no mass:
the next item of these logs never repeats one, and evaluation leaves them out). Summed over the levels, the soft
cross-entropies are the item-level cross-entropy against q along the path teacher forcing walks (level 0 is
exact: the root is every item's prefix). The loss at such a token is (1 - w) * hard + w * soft.

The teacher is the `sasrec-rank` model of the same split and experiment seed (`seqrank` section of the config),
trained first inside the LC-Rec run and kept there (`teacher.safetensors`, `teacher.json`), so a resumed run
reads the same targets. docs/methods/lcrec.md reports what it buys.
"""
from __future__ import annotations

import numpy as np
import torch

from llmrec.collab.ranking import next_item_scores
from llmrec.methods.lcrec.trie import IndexTrie

TEACHER = "teacher"
"""The teacher's files in the run: teacher.safetensors (weights) and teacher.json (description and report)."""


class NextItemTeacher:
    """A trained SASRec read as per-level soft targets over an item trie.

    model: a `collab.SASRec` (eval mode is set here); trie: the LC-Rec index trie; temperature divides the
    teacher's scores before the softmax."""

    def __init__(self, model, trie: IndexTrie, temperature: float = 1.0):
        self.model = model.eval()
        self.trie = trie
        self.temperature = temperature

    @torch.no_grad()
    def item_probs(self, history: list[int], n_targets: int) -> torch.Tensor:
        """[n_targets, n_items] the teacher's next-item distribution before each of the last `n_targets` items of
        `history`, each read after the items before it (at most the model's max_len of them, laid out as when
        SASRec ranks: one forward per prefix, its last item in the last slot); padding and already-seen items
        get probability 0."""
        hist = np.asarray(history, dtype=np.int64)
        first = len(hist) - n_targets  # target j is hist[first + j], read after hist[:first + j]
        scores = next_item_scores(self.model, [hist[:first + j] for j in range(n_targets)])
        return torch.softmax(scores / self.temperature, dim=-1)

    def level_targets(self, probs: torch.Tensor, items: list[int]) -> list[torch.Tensor]:
        """Per trie level l, [n_targets, K_l]: the teacher's distribution over the children of item j's first l
        tokens (columns: `trie.level_tokens[l]`; 0 where the prefix has no such child). probs: `item_probs`."""
        trie = self.trie
        items_t = torch.as_tensor(items, dtype=torch.long)
        out = []
        for level in range(trie.levels):
            nodes = trie.item_node[level]  # each item's node at depth level + 1
            mass = torch.zeros(len(items), int(nodes.max()) + 1, dtype=probs.dtype)
            mass.scatter_add_(1, nodes[1:].expand(len(items), -1), probs[:, 1:])
            parent = torch.zeros_like(items_t) if level == 0 else trie.item_node[level - 1][items_t]
            children = trie.child[level][parent]  # [n_targets, K_l], -1 where not a child
            q = mass.gather(1, children.clamp(min=0)) * (children >= 0)
            out.append(q / q.sum(1, keepdim=True).clamp(min=1e-30))
        return out

    def targets(self, history: list[int], n_targets: int) -> list[torch.Tensor]:
        """`level_targets` of the last `n_targets` items of `history`."""
        return self.level_targets(self.item_probs(history, n_targets), [int(i) for i in history[-n_targets:]])


def train_teacher(experiment, split, run, tracker=None):
    """The run's SASRec teacher: read back when the run has it, else trained as `sasrec-rank` would train it under
    this experiment (its `seqrank` section and seed) and written into the run. Returns (model, report)."""
    from llmrec.collab.ranking import train_ranking
    from llmrec.methods.sasrec_rank.recipe import (lcrec_test_rows, load_model, ranking_config, save_model,
                                                   subset_metrics)

    rc, overrides = ranking_config(experiment)
    if run.has(f"{TEACHER}.safetensors") and run.has(f"{TEACHER}.json"):
        return load_model(run, TEACHER), run.load_json(f"{TEACHER}.json")["report"]
    ckpt = run.file("teacher_checkpoint")
    ckpt.mkdir(parents=True, exist_ok=True)
    result = train_ranking(split, rc, overrides, checkpoint_dir=ckpt, tracker=tracker)
    test = subset_metrics(result.model, split, lcrec_test_rows(experiment, split), "test", rc)
    report = {"valid_ndcg@10": result.best_valid_ndcg10, "best_epoch": result.best_epoch,
              "train_seconds": round(result.seconds, 1),
              "test_hr@10": test["hr@10"], "test_ndcg@10": test["ndcg@10"], "test_users": int(test["users"])}
    save_model(run, result, TEACHER, report=report)
    return result.model.eval(), report
