"""A popularity prior over the item trie (ours, `LCRecConfig.item_prior="popularity"`).

Each edge of the trie (a node and one of its children) gets the log-probability that an item below the node lies
below that child, from the items' training counts plus one:

    log P(child | node) = log (sum of count + 1 over the items below the child)
                          - log (sum of count + 1 over the items below the node).

`IndexTrie.child_log_probs` adds it to the model's logits of the node's children before their softmax, so the
trie-normalised item likelihood (`item_loss="trie"`, the loss and the beam search alike) is
prod_l softmax(prior + logits). The products of the edges' probabilities are exactly the items' popularity: with
the untied output rows at 0 (`new_token_head="untied"`, every index logit 0) the untrained model ranks items as
popularity does, and fine-tuning learns what the user's history adds to it. The prior is a function of the split
alone; it never trains, and a loaded run computes it again from its split.

One bias per index token cannot do this: deeper tokens are shared by several prefixes (docs/methods/lcrec.md
has what such biases reach).
"""
from __future__ import annotations

import numpy as np
import torch

from llmrec.methods.lcrec.trie import IndexTrie


def popularity_prior(trie: IndexTrie, counts: np.ndarray) -> list[torch.Tensor]:
    """Per level l, [nodes at depth l, K_l] float32 log P(child | node) (-inf where the node has no such child).
    counts: [n_items] training occurrences per item id (index 0 ignored)."""
    mass_of_item = torch.as_tensor(np.asarray(counts, dtype=np.float64)[1:trie.n_items] + 1.0)
    out = []
    for level in range(trie.levels):
        child = trie.child[level].cpu()
        mass = torch.zeros(int(child.max()) + 1, dtype=torch.float64)
        mass.scatter_add_(0, trie.item_node[level].cpu()[1:], mass_of_item)  # the items below each child
        table = torch.full(child.shape, float("-inf"), dtype=torch.float64)
        table[child >= 0] = mass[child[child >= 0]].log()
        out.append((table - table.logsumexp(dim=1, keepdim=True)).float())
    return out
