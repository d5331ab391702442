"""Constrained beam search over the item trie: top-k distinct existing items per prompt.

`constrained_beam_search` (the one used for evaluation): prompts are left-padded and encoded once per user; the
key/value cache is then copied to the beams and reordered as beams are chosen, each step feeding one token per
beam. At level l the full-vocabulary log-softmax of every beam is gathered at that level's K_l token ids and
masked with the trie's `allowed[l]` rows of the beams' nodes (one gather, batched over users and beams), then
the best `num_beams` (beam, code) pairs per user are kept. After the last level an optional EOS step adds
log P(EOS | index) (the official runs: the response is the index then EOS). A beam is a path in the trie, so the
results are distinct items that exist; fewer than `num_beams` come back only when fewer items exist. Items to
leave out (a user's history) are masked through the trie: a prefix is only extended while an item it may return
lies below it, so no beam is spent on excluded items. Identical prompts (one user under two exclusion rules) share
one prompt forward.

Scores are sums of full-vocabulary log-probabilities (masking happens after the softmax), as in transformers'
beam search with `prefix_allowed_tokens_fn`; with `num_beams` >= the number of items the search is exhaustive,
so its ranking equals the ranking of every item's teacher-forced log-probability (`score_all_items`). With
`normalize="trie"` (a model trained with `LCRecConfig.item_loss="trie"`) each level's log-probabilities are
normalised over the node's children instead (`IndexTrie.child_log_probs`), and no EOS is scored: the trie makes
it certain after a complete index.

`hf_constrained_generate` is the reference baseline: transformers' `generate(num_beams=..., prefix_allowed_tokens_fn
=...)`, a Python callback per beam and step (the official LC-Rec decoding, but with a real trie).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llmrec.errors import LlmrecError
from llmrec.methods.lcrec.config import ITEM_LOSSES
from llmrec.methods.lcrec.trie import IndexTrie


@dataclass
class BeamResult:
    """Per prompt, the items found (best first) and their sequence log-probabilities."""

    items: torch.Tensor
    """[B, num_beams] item ids, 0 where fewer items exist than beams."""
    scores: torch.Tensor
    """[B, num_beams] summed log-probabilities, -inf where `items` is 0."""

    def ranks(self, targets) -> torch.Tensor:
        """[B] float 1-based rank of each target among the returned items; inf when not returned (a miss at
        every cut-off, also those beyond the beam width)."""
        t = torch.as_tensor(targets, device=self.items.device).view(-1, 1)
        hit = (self.items == t) & (self.items > 0)
        pos = hit.float().argmax(1).float() + 1
        return torch.where(hit.any(1), pos, torch.full_like(pos, float("inf")))


def left_pad(prompts: list[list[int]], pad_token_id: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both [B, T], prompts aligned to the right."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise LlmrecError("beam search: every prompt needs at least one token")
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.as_tensor(p, dtype=torch.long)
        mask[row, width - len(p):] = 1
    return ids.to(device), mask.to(device)


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def constrained_beam_search(model, prompts: list[list[int]], trie: IndexTrie, *, num_beams: int = 20,
                            pad_token_id: int = 0, eos_token_id: int | None = None,
                            exclude: list | None = None, normalize: str = "vocab") -> BeamResult:
    """Top `num_beams` distinct items per prompt by summed log-probability of their index tokens (and of EOS
    after them when `eos_token_id` is given). One prompt forward per distinct prompt, then one token per beam per
    level.

    exclude: per prompt, item ids that must not come back (None or an empty list: none), e.g. the user's
    history. A prefix with no other item below it is never extended, so a prompt gets min(num_beams, items left)
    items. The same prompt may appear twice with different exclusions: it is encoded once.
    normalize: "vocab" (log-softmax over the whole vocabulary, then the trie's mask) or "trie" (over each node's
    children alone; EOS is not scored)."""
    if normalize not in ITEM_LOSSES:
        raise LlmrecError(f"beam search: normalize must be one of {', '.join(ITEM_LOSSES)}, got {normalize!r}")
    if normalize == "trie":
        eos_token_id = None
    if num_beams < 1:
        raise LlmrecError(f"num_beams must be >= 1, got {num_beams}")
    if exclude is not None and len(exclude) != len(prompts):
        raise LlmrecError(f"beam search: {len(exclude)} exclusion lists for {len(prompts)} prompts")
    device = _device(model)
    B, W = len(prompts), num_beams
    distinct: dict[tuple, int] = {}
    row_of = torch.as_tensor([distinct.setdefault(tuple(p), len(distinct)) for p in prompts], device=device)
    ids, mask = left_pad([list(p) for p in distinct], pad_token_id, device)
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
    cache = out.past_key_values
    if len(distinct) < B:
        cache.reorder_cache(row_of)
    last = out.logits[:, -1].float()[row_of]  # [B, V]

    def level_log_probs(logits, level, nodes):  # [rows, K_level]: the level's tokens, the trie's mask applied
        if normalize == "trie":
            return trie.child_log_probs(logits, level, nodes.clamp(min=0))
        return F.log_softmax(logits, dim=-1)[:, trie.level_tokens[level].to(device)]

    mask, pos = mask[row_of], pos[row_of]
    # open[d][row, node]: the node at depth d + 1 still has an item this row may get
    open_ = trie.open_nodes(exclude, device) if exclude is not None and any(
        e is not None and len(e) for e in exclude) else None

    # level 0: every user starts from the root
    toks = trie.level_tokens[0].to(device)
    allowed0 = trie.allowed[0][0].to(device)[None, :].expand(B, -1)
    if open_ is not None:
        allowed0 = allowed0 & open_[0].gather(1, trie.child[0][0].to(device).clamp(min=0).expand(B, -1))
    cand = level_log_probs(last, 0, torch.zeros(B, dtype=torch.long, device=device)).masked_fill(
        ~allowed0, float("-inf"))
    take = min(W, cand.shape[1])
    top, k = cand.topk(take, dim=1)
    scores = torch.full((B, W), float("-inf"), device=device)
    scores[:, :take] = top
    code = torch.zeros((B, W), dtype=torch.long, device=device)
    code[:, :take] = k
    node = trie.child[0].to(device)[0][code]  # [B, W]
    node = torch.where(torch.isfinite(scores), node, torch.full_like(node, -1))
    token = toks[code]
    cache.batch_repeat_interleave(W)
    mask = mask.repeat_interleave(W, dim=0)
    next_pos = pos[:, -1].repeat_interleave(W) + 1
    base = (torch.arange(B, device=device) * W)[:, None]

    steps = trie.levels - 1 + (eos_token_id is not None)
    for step in range(steps):
        level = step + 1
        mask = torch.cat([mask, mask.new_ones((B * W, 1))], dim=1)
        out = model(input_ids=token.view(-1, 1), attention_mask=mask, position_ids=next_pos[:, None],
                    past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        next_pos = next_pos + 1
        last = out.logits[:, -1].float()  # [B*W, V]
        if level == trie.levels:  # the EOS step: one continuation per beam, no reordering
            scores = scores + F.log_softmax(last, dim=-1)[:, eos_token_id].view(B, W)
            break
        toks = trie.level_tokens[level].to(device)
        flat_node = node.view(-1).clamp(min=0)
        allowed = trie.allowed[level].to(device)[flat_node] & (node.view(-1) >= 0)[:, None]
        if open_ is not None:  # children with nothing left below them are closed
            children = trie.child[level].to(device)[flat_node].clamp(min=0).view(B, -1)
            allowed = allowed & open_[level].gather(1, children).view(B * W, -1)
        cand = (level_log_probs(last, level, node.view(-1)) + scores.view(-1, 1)).masked_fill(
            ~allowed, float("-inf"))
        K = toks.numel()
        top, flat = cand.view(B, W * K).topk(min(W, W * K), dim=1)
        beam, k = flat // K, flat % K
        scores = torch.full((B, W), float("-inf"), device=device)
        scores[:, :top.shape[1]] = top
        beam_full = torch.zeros((B, W), dtype=torch.long, device=device)
        beam_full[:, :top.shape[1]] = beam
        k_full = torch.zeros((B, W), dtype=torch.long, device=device)
        k_full[:, :top.shape[1]] = k
        parent = node.gather(1, beam_full)
        child = trie.child[level].to(device)[parent.clamp(min=0), k_full]
        node = torch.where(torch.isfinite(scores) & (parent >= 0), child, torch.full_like(child, -1))
        token = toks[k_full]
        cache.reorder_cache((base + beam_full).view(-1))
        # rows of one user share their padding, so the attention mask needs no reordering

    items = torch.where(node >= 0, trie.leaf_item.to(device)[node.clamp(min=0)], torch.zeros_like(node))
    scores = torch.where(node >= 0, scores, torch.full_like(scores, float("-inf")))
    scores, order = scores.sort(dim=1, descending=True, stable=True)
    return BeamResult(items=items.gather(1, order), scores=scores)


@torch.no_grad()
def hf_constrained_generate(model, prompts: list[list[int]], trie: IndexTrie, *, num_beams: int = 20,
                            pad_token_id: int = 0, eos_token_id: int) -> BeamResult:
    """Reference: transformers' beam search with a `prefix_allowed_tokens_fn` walking the same trie (index
    tokens then EOS, as the official LC-Rec decoding). Slow: a Python callback per beam per step."""
    if trie.eos_token_id != eos_token_id:
        raise LlmrecError("hf_constrained_generate: build the trie with the same eos_token_id")
    device = _device(model)
    ids, mask = left_pad(prompts, pad_token_id, device)
    width = ids.shape[1]

    def allowed(batch_id: int, sent: torch.Tensor) -> list[int]:
        return trie.allowed_next(sent[width:].tolist())

    out = model.generate(input_ids=ids, attention_mask=mask, num_beams=num_beams, num_return_sequences=num_beams,
                         max_new_tokens=trie.levels + 1, do_sample=False, early_stopping=True,
                         prefix_allowed_tokens_fn=allowed, output_scores=True, return_dict_in_generate=True,
                         pad_token_id=pad_token_id, eos_token_id=eos_token_id, length_penalty=1.0,
                         temperature=None, top_p=None, top_k=None)
    seqs = out.sequences[:, width:].view(len(prompts), num_beams, -1).cpu()
    seq_scores = out.sequences_scores.view(len(prompts), num_beams).float().cpu()
    items = torch.zeros((len(prompts), num_beams), dtype=torch.long)
    scores = torch.full((len(prompts), num_beams), float("-inf"))
    for b in range(len(prompts)):
        found = []
        for w in range(num_beams):
            item = trie.item_of(seqs[b, w, :trie.levels + 1].tolist())
            # beams padded with -1e9 (fewer items than beams) or cut short are not items
            if item and seq_scores[b, w] > -1e8 and item not in {i for i, _ in found}:
                # undo the length normalisation: every complete answer has levels + 1 tokens
                found.append((item, float(seq_scores[b, w]) * (trie.levels + 1)))
        found.sort(key=lambda x: -x[1])
        for w, (item, s) in enumerate(found):
            items[b, w], scores[b, w] = item, s
    return BeamResult(items=items, scores=scores)


@torch.no_grad()
def score_all_items(model, prompt: list[int], item_token_ids, *, eos_token_id: int | None = None,
                    batch_size: int = 64, trie: IndexTrie | None = None) -> torch.Tensor:
    """[n_items] teacher-forced log P(item's index tokens (+ EOS) | prompt) for every item (index 0: -inf).
    With `trie`: each token's probability normalised over its prefix's children (`normalize="trie"` of the beam
    search), and no EOS.

    Brute force (one full forward per item, no cache): the reference the beam search is tested against, and an
    exact full ranking for small catalogues."""
    if trie is not None:
        eos_token_id = None
    device = _device(model)
    table = torch.as_tensor(item_token_ids, dtype=torch.long)
    n = table.shape[0]
    out = torch.full((n,), float("-inf"))
    prompt_t = torch.as_tensor(prompt, dtype=torch.long)
    for start in range(1, n, batch_size):
        rows = table[start:start + batch_size]
        if eos_token_id is not None:
            rows = torch.cat([rows, torch.full((len(rows), 1), eos_token_id, dtype=torch.long)], dim=1)
        seq = torch.cat([prompt_t.expand(len(rows), -1), rows], dim=1).to(device)
        logits = model(input_ids=seq).logits.float()[:, len(prompt) - 1:-1]  # position j predicts token j + 1
        if trie is None:
            picked = F.log_softmax(logits, dim=-1).gather(2, rows.to(device).unsqueeze(-1)).squeeze(-1).sum(1)
        else:
            picked = torch.zeros(len(rows), device=device)
            walked = torch.as_tensor([trie.token_nodes(r) for r in rows.tolist()], device=device)  # [n, 3, L]
            for level in range(trie.levels):
                logp = trie.child_log_probs(logits[:, level], level, walked[:, 1, level])
                picked += logp.gather(1, walked[:, 2, level, None]).squeeze(1)
        out[start:start + len(rows)] = picked.cpu()
    return out
