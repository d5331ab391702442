"""Item indices spelled in level tokens, their JSON file, and the vocabulary extension.

An item's index is one code per level; level l's code c is the token `<{letter_l}_{c}>` (levels a, b, c, d, ...),
so `<a_12><b_200><c_7><d_31>` is one item, four tokens, no spaces (the official format). The index file is the
official JSON, keyed by our internal item id: `{"1": ["<a_12>", "<b_200>", "<c_7>", "<d_31>"], ...}`.

Only the tokens that occur are added to the tokenizer (about a thousand for four levels of 256), each as an
added token: the tokenizer matches it before its BPE model runs, so it is never split and never merged with its
neighbours. The model's embedding rows (and a separate output head's rows) grow to the new vocabulary size, each
new row a distinct random vector (see `add_index_tokens`).
"""
from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from llmrec.errors import LlmrecError
from llmrec.methods.lcrec.config import NEW_ROW_INITS
from llmrec.paths import atomic_file

LEVEL_LETTERS = string.ascii_lowercase
_TOKEN_RE = re.compile(r"^<([a-z])_(\d+)>$")


def code_token(level: int, code: int) -> str:
    """The token of `code` at `level` (0-based): level 0 -> `<a_code>`."""
    return f"<{LEVEL_LETTERS[level]}_{int(code)}>"


def parse_token(token: str) -> tuple[int, int]:
    """(level, code) of a token such as `<c_7>`; LlmrecError for anything else."""
    m = _TOKEN_RE.match(token)
    if not m:
        raise LlmrecError(f"{token!r} is not an index token like '<a_12>'")
    return LEVEL_LETTERS.index(m[1]), int(m[2])


@dataclass
class ItemIndex:
    """Codes of every item: row i holds item i's code per level (row 0, the padding id, is all -1)."""

    codes: np.ndarray
    """[n_items, levels] int64; n_items counts the padding row, as `Dataset.n_items` does."""

    def __post_init__(self):
        self.codes = np.asarray(self.codes, dtype=np.int64)
        if self.codes.ndim != 2 or self.codes.shape[0] < 2 or self.codes.shape[1] < 1:
            raise LlmrecError(f"item index: expected codes of shape [n_items, levels], got {self.codes.shape}")
        if self.codes.shape[1] > len(LEVEL_LETTERS):
            raise LlmrecError(f"item index: at most {len(LEVEL_LETTERS)} levels, got {self.codes.shape[1]}")
        if (self.codes[1:] < 0).any():
            bad = int(np.flatnonzero((self.codes[1:] < 0).any(axis=1))[0]) + 1
            raise LlmrecError(f"item index: item {bad} has no code")

    @property
    def n_items(self) -> int:
        return self.codes.shape[0]

    @property
    def levels(self) -> int:
        return self.codes.shape[1]

    def item_tokens(self, item_id: int) -> list[str]:
        return [code_token(level, c) for level, c in enumerate(self.codes[item_id])]

    def spell(self, item_id: int) -> str:
        """The item as text: its tokens joined without spaces, e.g. `<a_12><b_200><c_7><d_31>`."""
        return "".join(self.item_tokens(item_id))

    def tokens(self) -> list[str]:
        """Every token that occurs, level by level, codes ascending."""
        return [code_token(level, c) for level in range(self.levels) for c in np.unique(self.codes[1:, level])]

    def collisions(self) -> int:
        """Items whose full index another item already has (n_items - distinct indices)."""
        real = self.codes[1:]
        return int(len(real) - len(np.unique(real, axis=0)))

    def to_json(self) -> dict[str, list[str]]:
        return {str(i): self.item_tokens(i) for i in range(1, self.n_items)}

    def save(self, path: str | Path) -> None:
        with atomic_file(path) as tmp:
            Path(tmp).write_text(json.dumps(self.to_json()))

    @classmethod
    def from_json(cls, data: dict, n_items: int | None = None, where: str = "index") -> "ItemIndex":
        """Parse `{item_id: [tokens]}` (internal ids 1..). Every item 1..n_items-1 must be present when n_items
        is given; all indices must have the same number of levels, in level order."""
        if not isinstance(data, dict) or not data:
            raise LlmrecError(f"{where}: expected a JSON object {{item_id: [tokens]}}")
        try:
            ids = {int(k): v for k, v in data.items()}
        except ValueError:
            raise LlmrecError(f"{where}: keys must be integer item ids") from None
        n = n_items if n_items is not None else max(ids) + 1
        levels = len(next(iter(ids.values())))
        codes = np.full((n, levels), -1, dtype=np.int64)
        for item, toks in ids.items():
            if not 1 <= item < n:
                raise LlmrecError(f"{where}: item id {item} outside 1..{n - 1}")
            if not isinstance(toks, list) or len(toks) != levels:
                raise LlmrecError(f"{where}: item {item}: expected a list of {levels} tokens, got {toks!r}")
            for pos, tok in enumerate(toks):
                level, code = parse_token(str(tok))
                if level != pos:
                    raise LlmrecError(f"{where}: item {item}: token {tok!r} at position {pos} is of level {level}")
                codes[item, pos] = code
        missing = np.flatnonzero((codes[1:] < 0).any(axis=1))
        if len(missing):
            raise LlmrecError(f"{where}: no index for item {int(missing[0]) + 1} ({len(missing)} items missing)")
        return cls(codes)

    @classmethod
    def load(cls, path: str | Path, n_items: int | None = None) -> "ItemIndex":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise LlmrecError(f"{path}: cannot read index JSON ({type(exc).__name__})") from None
        return cls.from_json(data, n_items, where=str(path))


def add_index_tokens(model, tokenizer, index: ItemIndex, *, init: str = "normal", seed: int = 0) -> dict[str, int]:
    """Add the index's tokens to `tokenizer` as atomic added tokens and grow `model`'s embeddings to match.

    Returns token -> id. Tokens already in the vocabulary keep their id and their rows (adding twice is
    harmless). The rows of the tokens added by this call, input and (untied) output side:
    - init="normal": distinct random rows, N(0, initializer_range^2) per coordinate, drawn from a generator
      seeded by `seed`: what `resize_token_embeddings` gave when the official code ran (transformers < 4.46);
    - init="matched": the same with the standard deviation of the existing rows (their scale; a trained model's
      rows are often much larger than its initializer_range: SmolLM2-135M 0.136 against 0.02);
    - init="mean": transformers' current default, the old rows' mean plus noise of 1e-9 times their covariance:
      every new row is the same vector (pairwise cosine 1.000), so all index tokens start with one logit and
      one input vector. Kept to measure that.
    """
    from tokenizers import AddedToken

    if init not in NEW_ROW_INITS:
        raise LlmrecError(f"new token init: expected one of {', '.join(NEW_ROW_INITS)}, got {init!r}")
    tokens = index.tokens()
    before = len(tokenizer)
    tokenizer.add_tokens([AddedToken(t, single_word=False, lstrip=False, rstrip=False, normalized=False)
                          for t in tokens])
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in tokens}
    if model.get_input_embeddings().weight.shape[0] < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer), mean_resizing=init == "mean")
        if init != "mean":
            init_rows(model, [i for i in ids.values() if i >= before], seed, matched=init == "matched")
    for t, i in ids.items():  # the one property everything else relies on
        if tokenizer(t, add_special_tokens=False)["input_ids"] != [i]:
            raise LlmrecError(f"tokenizer splits the added index token {t!r}")
    return ids


def init_rows(model, token_ids: list[int], seed: int = 0, matched: bool = False) -> None:
    """Draw the rows of `token_ids` from N(0, s^2), s = initializer_range (matched: the standard deviation of the
    other rows of the same matrix), input embedding and (when untied) output head independently. Drawn here, not
    left to the resize, so that they are seeded and the same under every transformers version."""
    if not token_ids:
        return
    gen = torch.Generator().manual_seed(seed)
    idx = torch.as_tensor(sorted(token_ids))
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    weights = [emb] + ([head.weight] if head is not None and head.weight is not emb else [])
    with torch.no_grad():
        for w in weights:
            std = float(getattr(model.config, "initializer_range", 0.02))
            if matched:
                others = torch.ones(w.shape[0], dtype=torch.bool)
                others[idx] = False
                std = float(w[others.to(w.device)].float().std())
            rows = torch.randn(len(idx), w.shape[1], generator=gen) * std
            w[idx.to(w.device)] = rows.to(w.device, w.dtype)


def untie_new_rows(model, token_ids: list[int]) -> None:
    """Give the added tokens output rows of their own, starting at zero (`LCRecConfig.new_token_head="untied"`).

    A tied backbone (SmolLM2) gets an output head that is a copy of its embedding matrix, so every existing
    token's logit is unchanged; an untied one keeps its head. The added tokens' output rows are then set to 0:
    every index token starts at logit 0, uniform among a prefix's children, where tied random rows at the
    vocabulary's scale start the model confidently wrong (SmolLM2: logits with a standard deviation of 6.9, its
    last hidden state having a norm of ~48 and its rows a standard deviation of 0.136)."""
    emb, head = model.get_input_embeddings(), model.get_output_embeddings()
    if head is None:
        raise LlmrecError("new_token_head=untied: the backbone has no output head")
    if head.weight is emb.weight:
        w = emb.weight
        untied = torch.nn.Linear(w.shape[1], w.shape[0], bias=False, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            untied.weight.copy_(w)
        model.set_output_embeddings(untied)
        model.config.tie_word_embeddings = False  # so that no later tie_weights() ties them back
        if getattr(model, "all_tied_weights_keys", None):
            model.all_tied_weights_keys = {}
    with torch.no_grad():
        model.get_output_embeddings().weight[torch.as_tensor(sorted(token_ids))] = 0.0


def index_token_ids(index: ItemIndex, token_ids: dict[str, int]) -> np.ndarray:
    """[n_items, levels] vocabulary ids of each item's tokens (row 0: -1)."""
    out = np.full(index.codes.shape, -1, dtype=np.int64)
    for item in range(1, index.n_items):
        out[item] = [token_ids[t] for t in index.item_tokens(item)]
    return out
