"""The trie of valid item indices, stored as one dense table per level so beam search can mask on tensors.

Level l has the sorted distinct token ids that occur at that level (`level_tokens[l]`, K_l of them) and one row
per trie node at depth l (the distinct index prefixes of length l; depth 0 is the root). `allowed[l][node, k]`
says whether a node may continue with `level_tokens[l][k]`, `child[l][node, k]` which node that leads to (-1
where not allowed). Nodes at depth L (complete indices) map to items through `leaf_item`; `item_node[l]` is each
item's node at depth l + 1 and `leaves[l]` how many items lie below each node there, so a search that must leave
some items out (`open_nodes`) can drop a prefix as soon as nothing below it is left.

Masking a [rows, K_l] slice of log-probabilities with `allowed[l][nodes]` is then one gather, whatever the batch
or beam width: no per-token Python callback. `child_log_probs` is the other reading of the same tables: the
log-softmax over a node's children only (the item likelihood of `LCRecConfig.item_loss="trie"`), and
`token_nodes` finds, in a token sequence, each index token's level and the node it continues.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from llmrec.errors import LlmrecError


class IndexTrie:
    """Trie over the token ids of every item's index (items with identical indices are refused)."""

    def __init__(self, item_token_ids: np.ndarray, eos_token_id: int | None = None):
        """item_token_ids: [n_items, L] vocabulary ids (row 0, the padding item, is ignored)."""
        ids = np.asarray(item_token_ids, dtype=np.int64)
        if ids.ndim != 2 or ids.shape[0] < 2:
            raise LlmrecError(f"trie: expected token ids of shape [n_items, levels], got {ids.shape}")
        real = ids[1:]
        if (real < 0).any():
            raise LlmrecError("trie: an item has no token ids")
        self.levels = ids.shape[1]
        self.eos_token_id = eos_token_id
        self.level_tokens: list[torch.Tensor] = []
        self.allowed: list[torch.Tensor] = []
        self.child: list[torch.Tensor] = []
        self.item_node: list[torch.Tensor] = []
        self.leaves: list[torch.Tensor] = []
        node = np.zeros(len(real), dtype=np.int64)  # every item starts at the root
        n_nodes = 1
        for level in range(self.levels):
            toks, k = np.unique(real[:, level], return_inverse=True)
            # children = distinct (parent node, token) pairs, numbered in sorted order
            pair = node * len(toks) + k
            uniq, child_of_item = np.unique(pair, return_inverse=True)
            allowed = np.zeros((n_nodes, len(toks)), dtype=bool)
            child = np.full((n_nodes, len(toks)), -1, dtype=np.int64)
            allowed[uniq // len(toks), uniq % len(toks)] = True
            child[uniq // len(toks), uniq % len(toks)] = np.arange(len(uniq))
            self.level_tokens.append(torch.from_numpy(toks))
            self.allowed.append(torch.from_numpy(allowed))
            self.child.append(torch.from_numpy(child))
            node, n_nodes = child_of_item, len(uniq)
            self.item_node.append(torch.from_numpy(np.r_[-1, child_of_item]))
            self.leaves.append(torch.from_numpy(np.bincount(child_of_item, minlength=n_nodes)))
        if n_nodes != len(real):
            raise LlmrecError(f"trie: {len(real) - n_nodes} items share an index with another item; "
                              "indices must be unique")
        leaf_item = np.zeros(n_nodes, dtype=np.int64)
        leaf_item[node] = np.arange(1, len(ids))
        self.leaf_item = torch.from_numpy(leaf_item)
        self.n_items = len(ids)
        self.log_prior: list[torch.Tensor] | None = None
        """Optional, per level, [nodes at that depth, K_l] log-probabilities added to a node's children's logits
        by `child_log_probs` (`prior.popularity_prior`, `LCRecConfig.item_prior`)."""
        self._token_pos = [{int(t): i for i, t in enumerate(toks.tolist())} for toks in self.level_tokens]
        self._level_of = {t: (level, k) for level, pos in enumerate(self._token_pos) for t, k in pos.items()}

    def to(self, device) -> "IndexTrie":
        """Move the tables to `device` (in place; returns self)."""
        for name in ("level_tokens", "allowed", "child", "item_node", "leaves"):
            setattr(self, name, [t.to(device) for t in getattr(self, name)])
        if self.log_prior is not None:
            self.log_prior = [t.to(device) for t in self.log_prior]
        self.leaf_item = self.leaf_item.to(device)
        return self

    def open_nodes(self, exclude, device=None) -> list[torch.Tensor]:
        """Per depth 1..levels, [rows, nodes at that depth] bool: whether the node still has an item below it
        that the row does not exclude. exclude: per row, the item ids to leave out (None: none)."""
        out = []
        for depth in range(self.levels):
            nodes, leaves = self.item_node[depth], self.leaves[depth]
            left = leaves.repeat(len(exclude), 1)
            for r, items in enumerate(exclude):
                if items is not None and len(items):
                    ids = torch.as_tensor(np.unique(np.asarray(list(items), dtype=np.int64)))
                    ids = ids[(ids > 0) & (ids < self.n_items)]
                    left[r].scatter_add_(0, nodes[ids], torch.full_like(ids, -1))
            out.append((left > 0).to(device))
        return out

    def child_log_probs(self, logits: torch.Tensor, level: int, nodes: torch.Tensor) -> torch.Tensor:
        """[rows, K_level] log-probabilities of each node's children, normalised over those children alone
        (-inf for tokens the node does not continue with). logits: [rows, vocabulary] at the positions that
        predict a level-`level` token; nodes: [rows] the trie nodes at depth `level` they continue. With
        `log_prior`, the nodes' prior rows are added to the logits first."""
        toks = self.level_tokens[level].to(logits.device)
        allowed = self.allowed[level].to(logits.device)[nodes]
        picked = logits[:, toks].float()
        if self.log_prior is not None:
            picked = picked + self.log_prior[level].to(logits.device)[nodes].masked_fill(~allowed, 0.0)
        return F.log_softmax(picked.masked_fill(~allowed, float("-inf")), dim=-1)

    def token_nodes(self, ids: list[int]) -> tuple[list[int], list[int], list[int]]:
        """For each position of a token sequence: the level of its token in the trie (-1 when it is not an index
        token continuing a valid prefix), the node at that depth it continues, and its position among the level's
        tokens. A level-0 token starts a new item at the root; a level-l token continues the node the previous
        l tokens reached, when they did."""
        rows = []  # (level, node, k) per position
        node, depth = None, 0  # the node the last index tokens reached, at this depth
        for tok in ids:
            level, k = self._level_of.get(int(tok), (-1, -1))
            if level == 0:
                node, depth = 0, 0
            if level < 0 or node is None or depth != level or not bool(self.allowed[level][node, k]):
                rows.append((-1, 0, 0))
                node = None
                continue
            rows.append((level, node, k))
            node, depth = int(self.child[level][node, k]), level + 1
        levels, nodes, ks = (list(col) for col in zip(*rows)) if rows else ([], [], [])
        return levels, nodes, ks

    def walk(self, prefix: list[int]) -> int | None:
        """Node reached by a prefix of token ids (at depth len(prefix)); None when it leaves the trie."""
        node = 0
        for level, tok in enumerate(prefix):
            if level >= self.levels:
                return None
            k = self._token_pos[level].get(int(tok))
            if k is None or not bool(self.allowed[level][node, k]):
                return None
            node = int(self.child[level][node, k])
        return node

    def allowed_next(self, prefix: list[int]) -> list[int]:
        """Token ids allowed after `prefix` (a complete index allows only EOS; outside the trie: nothing)."""
        node = self.walk(prefix)
        if node is None:
            return []
        depth = len(prefix)
        if depth == self.levels:
            return [self.eos_token_id] if self.eos_token_id is not None else []
        if depth > self.levels:
            return []
        ks = torch.nonzero(self.allowed[depth][node]).flatten()
        return self.level_tokens[depth][ks].tolist()

    def item_of(self, tokens: list[int]) -> int:
        """Item id spelled by exactly `levels` token ids (a trailing EOS is allowed); 0 when none."""
        toks = list(tokens)
        if len(toks) == self.levels + 1 and toks[-1] == self.eos_token_id:
            toks = toks[:-1]
        if len(toks) != self.levels:
            return 0
        node = self.walk(toks)
        return 0 if node is None else int(self.leaf_item[node])
