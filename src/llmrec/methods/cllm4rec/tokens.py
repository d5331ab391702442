"""User and item ID tokens: `<user_i>` and `<item_j>` are atomic tokens whose ids follow the backbone's vocabulary.

Ids: 0..V-1 are the backbone's own tokens (V = rows of its input embedding), V + i is `<user_i>` (i in
0..n_users-1) and V + n_users + j is `<item_j>` (j in 0..n_items-1). The tokenizer itself is never changed: text is
cut at the ID tokens, the text pieces go through the backbone tokenizer, the ID tokens become their ids directly,
so an ID is always exactly one token whatever the tokenizer would have done with "user_12" (as in the official
code, pieces are right-stripped and whitespace-only pieces dropped).
"""
from __future__ import annotations

import functools
import re

import torch

from llmrec.errors import LlmrecError

ID_PATTERN = re.compile(r"<(user|item)_(\d+)>")


def user_token(i: int) -> str:
    return f"<user_{int(i)}>"


def item_token(j: int) -> str:
    return f"<item_{int(j)}>"


class IdVocab:
    """Encodes text containing `<user_i>` / `<item_j>` into backbone ids followed by ID-token ids."""

    def __init__(self, tokenizer, vocab_size: int, n_users: int, n_items: int):
        self.tokenizer = tokenizer
        self.vocab_size = int(vocab_size)
        """Backbone vocabulary rows V: the first user token's id."""
        self.n_users = int(n_users)
        self.n_items = int(n_items)
        self.eos_id = tokenizer.eos_token_id
        # a BOS only where the tokenizer itself adds one to a text (Llama-style), never for GPT-2 style ones
        plain = tokenizer("a", add_special_tokens=False).input_ids
        full = tokenizer("a").input_ids
        self.bos_id = full[0] if len(full) > len(plain) and full[0] == tokenizer.bos_token_id else None

    @property
    def item_base(self) -> int:
        """Id of `<item_0>`."""
        return self.vocab_size + self.n_users

    @property
    def size(self) -> int:
        """All ids: vocabulary + users + items."""
        return self.vocab_size + self.n_users + self.n_items

    def user_id(self, i: int) -> int:
        if not 0 <= i < self.n_users:
            raise LlmrecError(f"user id {i} outside 0..{self.n_users - 1}")
        return self.vocab_size + int(i)

    def item_id(self, j: int) -> int:
        if not 0 <= j < self.n_items:
            raise LlmrecError(f"item id {j} outside 0..{self.n_items - 1}")
        return self.item_base + int(j)

    def item_ids(self, items) -> list[int]:
        return [self.item_id(int(j)) for j in items]

    @functools.lru_cache(maxsize=65536)
    def _text(self, piece: str) -> tuple[int, ...]:
        return tuple(self.tokenizer(piece, add_special_tokens=False).input_ids)

    def text_ids(self, text: str) -> list[int]:
        """Plain text (no ID tokens expected) -> backbone ids, no special tokens."""
        return list(self._text(text))

    def encode(self, text: str, bos: bool = False) -> list[int]:
        """Text with ID tokens -> ids (a BOS first when asked and the backbone uses one)."""
        ids = [self.bos_id] if bos and self.bos_id is not None else []
        pos = 0
        for m in ID_PATTERN.finditer(text):
            piece = text[pos:m.start()].rstrip()
            if piece:
                ids.extend(self._text(piece))
            k = int(m.group(2))
            ids.append(self.user_id(k) if m.group(1) == "user" else self.item_id(k))
            pos = m.end()
        tail = text[pos:].rstrip()
        if tail:
            ids.extend(self._text(tail))
        return ids

    def decode(self, ids) -> str:
        """Ids -> text, special tokens dropped, ID tokens written back as `<user_i>` / `<item_j>` with one space
        before each one that follows text (the inverse of `encode` for text written that way)."""
        out, run = "", []
        for t in (int(x) for x in ids):
            if t < self.vocab_size:
                run.append(t)
                continue
            if run:
                out += self.tokenizer.decode(run, skip_special_tokens=True)
                run = []
            tok = user_token(t - self.vocab_size) if t < self.item_base else item_token(t - self.item_base)
            out += (" " if out and not out[-1].isspace() else "") + tok
        if run:
            out += self.tokenizer.decode(run, skip_special_tokens=True)
        return out

    def kinds(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(is_user, is_item) boolean masks of an id tensor."""
        is_user = (ids >= self.vocab_size) & (ids < self.item_base)
        return is_user, ids >= self.item_base
