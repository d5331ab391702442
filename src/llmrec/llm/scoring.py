"""Yes/No scoring of prompts: the CoLLM/BinLLM score, its loss, and the speed-ups that leave it unchanged.

Score (official): the raw logit of the "Yes" token at the last prompt position; loss = BCE-with-logits against
the label. Option `score="yes_no_softmax"`: log-softmax over (Yes, No) taking Yes; its BCE logit is Yes - No.

The answer token is the one the model would produce right after "#Answer:" (`resolve_answer_tokens`): the first
token that tokenising prompt + " Yes" adds to tokenising the prompt (" Yes" for byte-level BPEs such as
SmolLM2's, "▁Yes" for SentencePiece, which is what the official code's `tokenizer("Yes")` gives on Llama).

Speed-ups (each a `ScoringConfig` switch, all on by default, each tested against the plain path):
- `last_position_head`: run the transformer body only and project the last prompt position's hidden state onto
  the answer rows of the output embedding, instead of full-vocabulary logits at every position;
- `group_by_length`: `score()` sorts prompts by length into batches (padding a few percent of tokens) and
  restores the caller's order;
- `prefix_cache`: `rank()` / `rank_candidates()` encode a prompt prefix shared by several prompts once
  (ids[:candidate_start]: everything before the target item; one user's candidates, or a user's test rows with
  the same history) and reuse its key/value cache for every suffix; prompts that share no prefix are scored
  whole, batched. In fp32 the scores equal `score()`'s within 1e-4 (tested for text, code, ids-only and
  embedding-slot prompts); under bf16 autocast the two paths round differently.
Prompts are right-padded and the last real position gathered, so positions never shift with padding.

CoLLM hook: `embed_fn(input_ids, batch) -> inputs_embeds` replaces the token embeddings (e.g. overwrites the
slot positions, see `Batch.slot_columns`); it gets the padded ids and a `Batch` saying which of the caller's
prompts the rows are and at which prompt position column 0 sits. When what it puts into the prefix depends on
more than the prefix ids (CoLLM's user vector: the user, their history, for DIN the target item too), pass
`prefix_key(prompt)` returning that: prompts share a prefix only if their ids and keys are equal.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llmrec.errors import LlmrecError
from llmrec.llm.prompts import Prompt

SCORES = ("yes_logit", "yes_no_softmax")
ANSWER_PROBE = 'Answer with "Yes" or "No". \\n#Answer:'
"""The end of every packaged template: the text the answer token follows."""


@dataclass
class ScoringConfig:
    """How prompts are turned into scores."""

    score: str = "yes_logit"
    """yes_logit (official: raw Yes logit) or yes_no_softmax (log-softmax over Yes/No, taking Yes)."""
    batch_size: int = 16
    """Prompts per forward pass in score() and candidates per pass in rank()."""
    last_position_head: bool = True
    """Project only the last position onto only the answer rows (off: full LM head over all positions)."""
    group_by_length: bool = True
    """score(): batch prompts of similar length together (off: batches in the given order)."""
    prefix_cache: bool = True
    """rank(): encode each prefix shared by several prompts once and reuse its KV cache (off: score every full
    prompt)."""
    answer_words: tuple[str, str] = ("Yes", "No")
    """Positive and negative answer words."""


@dataclass(frozen=True)
class AnswerTokens:
    """Vocabulary ids of the positive and negative answer tokens."""

    yes: int
    no: int


def answer_token_id(tokenizer, word: str, prompt: str = ANSWER_PROBE) -> int:
    """Id of the first token `word` adds when it follows `prompt` after a space, as in '#Answer: Yes'."""
    base = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    full = list(tokenizer(prompt + " " + word, add_special_tokens=False)["input_ids"])
    if len(full) <= len(base) or full[:len(base)] != base:
        raise LlmrecError(f"answer word {word!r}: the tokenizer merges it into the end of the prompt "
                          f"({prompt[-20:]!r}), so no single answer token follows the prompt")
    return full[len(base)]


def resolve_answer_tokens(tokenizer, words: tuple[str, str] = ("Yes", "No"),
                          prompt: str = ANSWER_PROBE) -> AnswerTokens:
    """Ids of the positive and negative answer tokens after `prompt` (see answer_token_id)."""
    yes, no = (answer_token_id(tokenizer, w, prompt) for w in words)
    if yes == no:
        raise LlmrecError(f"answer words {words[0]!r} and {words[1]!r} start with the same token ({yes})")
    return AnswerTokens(yes=yes, no=no)


@dataclass
class Batch:
    """What `embed_fn` learns about the rows it embeds."""

    input_ids: torch.Tensor
    """[B, T] ids, right-padded."""
    attention_mask: torch.Tensor
    """[B, T] 1 for real tokens."""
    lengths: torch.Tensor
    """[B] real tokens per row."""
    rows: torch.Tensor
    """[B] index of each row in the caller's list of prompts."""
    prompts: list | None = None
    """The caller's Prompt objects for these rows (None when plain id lists were given)."""
    offset: int = 0
    """Prompt position of column 0 (non-zero for candidate suffixes that follow a cached prefix)."""

    def slot_columns(self, slot: str) -> torch.Tensor:
        """[B] column of each row's 'user' or 'item' embedding slot inside this batch, -1 where absent."""
        cols = torch.full((len(self.rows),), -1, dtype=torch.long)
        for b, p in enumerate(self.prompts or []):
            pos = getattr(p, f"{slot}_pos", None)
            if pos is not None and self.offset <= pos < self.offset + int(self.lengths[b]):
                cols[b] = pos - self.offset
        return cols.to(self.input_ids.device)


EmbedFn = Callable[[torch.Tensor, Batch], torch.Tensor]
PrefixKey = Callable[[Prompt], Hashable]


def token_embeddings(model, input_ids: torch.Tensor) -> torch.Tensor:
    """The model's own input embeddings (scaled where the architecture scales them, e.g. Gemma)."""
    return model.get_input_embeddings()(input_ids)


class YesScorer:
    """Scores prompts for one (possibly LoRA-wrapped) causal LM.

    logits(prompts): differentiable BCE logits [B] in the given order (training);
    loss(prompts, labels): BCE-with-logits, mean;
    score(prompts): numpy scores, no grad, eval mode, batched by length, caller's order;
    rank(prompts): the same scores with each prefix shared by several prompts encoded once (`prefix_group`).
    """

    def __init__(self, model, tokenizer, config: ScoringConfig | None = None, *, embed_fn: EmbedFn | None = None,
                 prefix_key: PrefixKey | None = None, answer: AnswerTokens | None = None):
        self.model = model
        self.config = config or ScoringConfig()
        if self.config.score not in SCORES:
            raise LlmrecError(f"score: {self.config.score!r} is not one of {', '.join(SCORES)}")
        if self.config.batch_size < 1:
            raise LlmrecError(f"batch_size: must be at least 1, got {self.config.batch_size}")
        self.answer = answer or resolve_answer_tokens(tokenizer, self.config.answer_words)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.embed_fn = embed_fn
        self.prefix_key = prefix_key

    # -- batching -------------------------------------------------------------------------------------------
    def _batch(self, items, rows, start: int = 0, stop: int | None = None) -> Batch:
        """Right-padded batch of ids[start:stop] of items[r] for r in rows (rows = indices into the caller's list)."""
        ids = [_ids(items[r])[start:stop] for r in rows]
        if any(len(x) == 0 for x in ids):
            raise LlmrecError("cannot score an empty prompt")
        device = _device(self.model)
        lengths = torch.tensor([len(x) for x in ids], dtype=torch.long)
        input_ids = torch.full((len(ids), int(lengths.max())), self.pad_id, dtype=torch.long)
        for b, x in enumerate(ids):
            input_ids[b, :len(x)] = torch.as_tensor(x, dtype=torch.long)
        mask = (torch.arange(input_ids.shape[1])[None, :] < lengths[:, None]).long()
        objs = [items[r] for r in rows] if all(isinstance(items[r], Prompt) for r in rows) else None
        return Batch(input_ids.to(device), mask.to(device), lengths.to(device),
                     torch.as_tensor(np.asarray(rows, dtype=np.int64)), objs, start)

    # -- forward ----------------------------------------------------------------------------------------------
    def _answer_logits(self, batch: Batch, past=None) -> torch.Tensor:
        """[B, 2] logits of (Yes, No) at each row's last real position."""
        embed_fn = self.embed_fn
        embeds = embed_fn(batch.input_ids, batch) if embed_fn is not None else None
        ids = None if embeds is not None else batch.input_ids
        mask = batch.attention_mask
        if past is not None:  # the cached prefix is all real tokens
            prefix = torch.ones(mask.shape[0], past.get_seq_length(), dtype=mask.dtype, device=mask.device)
            mask = torch.cat([prefix, mask], dim=1)
        rows = torch.arange(len(batch.lengths), device=batch.lengths.device)
        last = batch.lengths - 1
        answer = [self.answer.yes, self.answer.no]
        if not self.config.last_position_head:
            out = self.model(input_ids=ids, inputs_embeds=embeds, attention_mask=mask, past_key_values=past,
                             use_cache=past is not None)
            return out.logits[rows, last][:, answer].float()
        body, head, softcap = _split(self.model)
        hidden = body(input_ids=ids, inputs_embeds=embeds, attention_mask=mask, past_key_values=past,
                      use_cache=past is not None).last_hidden_state
        h = hidden[rows, last]
        if type(head) is nn.Linear:
            idx = torch.as_tensor(answer, device=h.device)
            logits = F.linear(h, head.weight[idx], None if head.bias is None else head.bias[idx])
        else:  # wrapped head (e.g. LoRA on lm_head): run it, on the last positions only
            logits = head(h)[:, answer]
        logits = logits.float()
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        return logits

    def _to_bce_logit(self, yes_no: torch.Tensor) -> torch.Tensor:
        return yes_no[:, 0] if self.config.score == "yes_logit" else yes_no[:, 0] - yes_no[:, 1]

    def _to_score(self, yes_no: torch.Tensor) -> torch.Tensor:
        # log-softmax over (Yes, No) taking Yes = log sigmoid(Yes - No)
        return yes_no[:, 0] if self.config.score == "yes_logit" else F.logsigmoid(yes_no[:, 0] - yes_no[:, 1])

    # -- public -----------------------------------------------------------------------------------------------
    def logits(self, prompts: Sequence) -> torch.Tensor:
        """[B] BCE logits (Yes logit, or Yes - No), differentiable, in the given order, one forward pass."""
        return self._to_bce_logit(self._answer_logits(self._batch(prompts, range(len(prompts)))))

    def loss(self, prompts: Sequence, labels) -> torch.Tensor:
        z = self.logits(prompts)
        y = torch.as_tensor(labels, dtype=z.dtype, device=z.device)
        return F.binary_cross_entropy_with_logits(z, y)

    @torch.no_grad()
    def score(self, prompts: Sequence, batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """Scores [N] (float64) in the caller's order."""
        with _eval(self.model):
            return self._score_rows(prompts, np.arange(len(prompts)), batch_size or self.config.batch_size, progress)

    @torch.no_grad()
    def rank(self, prompts: Sequence, batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """Scores [N] of prompts in the caller's order, each group sharing a prefix (`prefix_group`: one user's
        candidates, a user's test rows with one history) having it encoded once; the other prompts are scored
        whole, batched. Equal to score(prompts) within float tolerance."""
        bs = batch_size or self.config.batch_size
        if not self.config.prefix_cache:
            return self.score(prompts, bs, progress)
        with _eval(self.model):
            groups: dict[Hashable, list[int]] = {}
            for i, p in enumerate(prompts):
                groups.setdefault(self.prefix_group(p), []).append(i)
            shared = [rows for key, rows in groups.items() if key is not None and len(rows) > 1]
            alone = sorted(i for key, rows in groups.items() if key is None or len(rows) == 1 for i in rows)
            out = np.empty(len(prompts), dtype=np.float64)
            if alone:
                out[alone] = self._score_rows(prompts, alone, bs, progress)
            for rows in _progress(shared, progress, "shared prefixes"):
                out[rows] = self._rank(prompts, np.asarray(rows), prompts[rows[0]].candidate_start, bs)
            return out

    def prefix_group(self, prompt) -> Hashable | None:
        """What prompts must have in common to share a prefix: its ids, and `prefix_key` (None: never shared)."""
        if not isinstance(prompt, Prompt) or not prompt.candidate_start:
            return None
        ids = prompt.input_ids[:prompt.candidate_start]
        return ids if self.prefix_key is None else (ids, self.prefix_key(prompt))

    def _score_rows(self, items, rows, bs: int, progress: bool = False) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        lengths = np.array([len(_ids(items[r])) for r in rows], dtype=np.int64)
        order = np.argsort(-lengths, kind="stable") if self.config.group_by_length else np.arange(len(rows))
        out = np.empty(len(rows), dtype=np.float64)
        chunks = [order[i:i + bs] for i in range(0, len(order), bs)]
        for pos in _progress(chunks, progress, "scoring"):
            out[pos] = self._to_score(self._answer_logits(self._batch(items, rows[pos]))).cpu().numpy()
        return out

    @torch.no_grad()
    def rank_candidates(self, prefix_ids: Sequence[int], candidate_suffix_ids: Sequence[Sequence[int]],
                        batch_size: int | None = None) -> np.ndarray:
        """Scores of prefix + suffix for every suffix; equal to scoring each full prompt on its own."""
        full = [tuple(prefix_ids) + tuple(s) for s in candidate_suffix_ids]
        if not self.config.prefix_cache:
            return self.score(full, batch_size)
        with _eval(self.model):
            return self._rank(full, np.arange(len(full)), len(prefix_ids), batch_size or self.config.batch_size)

    def _rank(self, items, rows, start: int, bs: int) -> np.ndarray:
        """Scores of items[rows], which share their first `start` ids: encode those once, then the suffixes."""
        if start == 0 or any(len(_ids(items[r])) <= start for r in rows):
            # nothing to share, or a candidate whose last token is in the prefix: score whole prompts
            return self._score_rows(items, rows, bs)
        cache = self._prefix_cache(items, rows[0], start)
        out = np.empty(len(rows), dtype=np.float64)
        order = np.argsort(-np.array([len(_ids(items[r])) for r in rows]), kind="stable")
        for i in range(0, len(order), bs):
            pos = order[i:i + bs]
            past = copy.deepcopy(cache)
            past.batch_repeat_interleave(len(pos))
            batch = self._batch(items, rows[pos], start=start)
            out[pos] = self._to_score(self._answer_logits(batch, past=past)).cpu().numpy()
        return out

    def _prefix_cache(self, items, row: int, start: int):
        from transformers import DynamicCache

        batch = self._batch(items, [row], stop=start)
        embeds = self.embed_fn(batch.input_ids, batch) if self.embed_fn is not None else None
        ids = None if embeds is not None else batch.input_ids
        cache = DynamicCache(config=self.model.config)
        runner = _split(self.model)[0] if self.config.last_position_head else self.model
        runner(input_ids=ids, inputs_embeds=embeds, attention_mask=batch.attention_mask, past_key_values=cache,
               use_cache=True)
        return cache


def rank_candidates(model, tokenizer, prefix_ids: Sequence[int], candidate_suffix_ids: Sequence[Sequence[int]],
                    config: ScoringConfig | None = None) -> np.ndarray:
    """Scores of prefix + each suffix with the prefix's KV cache shared (see YesScorer.rank_candidates)."""
    return YesScorer(model, tokenizer, config).rank_candidates(prefix_ids, candidate_suffix_ids)


def length_grouped_batches(lengths, batch_size: int, seed: int | None = None, mega_batches: int = 50):
    """Index batches of similar length. seed None: sorted, longest first (evaluation). With a seed (training):
    shuffle, cut into mega-batches of `mega_batches * batch_size`, sort each by length, split, shuffle batches."""
    lengths = np.asarray(lengths)
    if seed is None:
        order = np.argsort(-lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(lengths))
    size = max(1, mega_batches) * batch_size
    batches = []
    for i in range(0, len(perm), size):
        mega = perm[i:i + size]
        mega = mega[np.argsort(-lengths[mega], kind="stable")]
        batches.extend(mega[j:j + batch_size] for j in range(0, len(mega), batch_size))
    return [batches[k] for k in rng.permutation(len(batches))]


def padding_fraction(lengths, batches) -> float:
    """Share of padded tokens when each batch is padded to its longest member."""
    lengths = np.asarray(lengths)
    padded = sum(len(b) * lengths[b].max() for b in batches if len(b))
    return float(1 - lengths.sum() / padded) if padded else 0.0


def _ids(p) -> Sequence[int]:
    return p.input_ids if isinstance(p, Prompt) else p


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _split(model):
    """(transformer body, output embedding, final logit softcap) of a causal LM, through a peft wrapper too."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    body, head = inner.get_decoder(), inner.get_output_embeddings()
    if body is inner or head is None:
        raise LlmrecError(f"{type(inner).__name__}: cannot separate the transformer body from the LM head; "
                          f"set last_position_head: false")
    config = inner.config.get_text_config() if hasattr(inner.config, "get_text_config") else inner.config
    for attr in ("logit_scale", "logits_scaling", "output_multiplier_scale"):
        if getattr(config, attr, None) not in (None, 1, 1.0):
            raise LlmrecError(f"{type(inner).__name__} scales its logits ({attr}); set last_position_head: false")
    return body, head, getattr(config, "final_logit_softcapping", None)


class _eval:
    """Eval mode inside the block (no dropout while scoring), the previous mode restored after."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm
    return tqdm(items, desc=desc, unit="batch")
