"""CLLM4Rec's documents: soft+hard prompts (heterogeneous: ID tokens and words) followed by homogeneous main text.

- Collaborative document of user i: prompt "<user_i> has interacted with", main = the user's train item tokens
  (pure ID tokens). The collaborative LM predicts every main token, the first one from the prompt's last
  position, over items only.
- Content document of a train pair (i, j): prompt "<user_i> has <verb> <item_j>:", main = the item's text
  (" Title (genres)" for MovieLens, title and text elsewhere) and the end token; the content LM predicts the main
  tokens over the vocabulary. (The paper's content documents are the user's review of the item; the data layer
  has no review text, so the item text the user chose stands in for it.)
- Recommendation prompt of user i: "<user_i> has interacted with <items...>, <user_i> will interact with"; the
  hidden state at its last token scores every item. When the item list is too long, items are dropped from the
  list, never the instruction at the end.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmrec.data.holdout import HoldoutSplit
from llmrec.methods.cllm4rec.tokens import IdVocab, item_token, user_token


@dataclass
class Document:
    """Token ids of one document: `prompt` is conditioned on, `main` is predicted."""

    prompt: list[int]
    main: list[int]
    kind: str
    """'collab' (main = item tokens, item head) or 'content' (main = words, vocabulary head)."""


def content_verb(split: HoldoutSplit, verb: str | None) -> str:
    if verb is not None:
        return verb
    return "watched" if str(split.meta.get("source", split.name)).lower().startswith("ml") else "interacted with"


def item_text(title: str, text: str) -> str:
    """' Title (genres)' / ' Title' / ' text': the content LM's main text for an item."""
    title, text = (title or "").strip(), (text or "").strip()
    if title and text:
        return f" {title} ({text})"
    return f" {title or text}" if (title or text) else ""


def subset(items: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    """A random subset of `limit` items (order kept) when there are more, else all."""
    if limit is None or len(items) <= limit:
        return items
    keep = np.sort(rng.choice(len(items), limit, replace=False))
    return items[keep]


def collaborative_documents(split: HoldoutSplit, vocab: IdVocab, max_items: int | None, seed: int) -> list[Document]:
    """One document per user with train items."""
    docs = []
    train = split.user_items("train")
    for user in range(1, split.n_users):
        items = train[user]
        if not len(items):
            continue
        items = subset(items, max_items, np.random.default_rng([seed, 1, user]))
        docs.append(Document(vocab.encode(f"{user_token(user)} has interacted with", bos=True),
                             vocab.item_ids(items), "collab"))
    return docs


def content_documents(split: HoldoutSplit, vocab: IdVocab, verb: str | None, max_text_tokens: int,
                      max_docs: int | None, seed: int) -> list[Document]:
    """One document per train pair (a seeded random subset of `max_docs` when there are more)."""
    verb = content_verb(split, verb)
    texts = {int(i): item_text(t, x) for i, t, x in split.items[["item_id", "title", "text"]].itertuples(index=False)}
    pairs = split.train[["user_id", "item_id"]].to_numpy(np.int64)
    if max_docs is not None and len(pairs) > max_docs:
        pairs = pairs[np.sort(np.random.default_rng([seed, 2]).choice(len(pairs), max_docs, replace=False))]
    eos = [vocab.eos_id] if vocab.eos_id is not None else []
    docs = []
    for user, item in pairs:
        main = vocab.text_ids(texts.get(int(item), ""))[:max_text_tokens] + eos
        if not main:
            continue
        docs.append(Document(vocab.encode(f"{user_token(user)} has {verb} {item_token(item)}:", bos=True),
                             main, "content"))
    return docs


def recommendation_prompt(vocab: IdVocab, user: int, items) -> list[int]:
    """Ids of "<user_i> has interacted with <items>, <user_i> will interact with" (user 0: an unknown user)."""
    u = user_token(user)
    listed = " ".join(item_token(j) for j in items)
    return vocab.encode(f"{u} has interacted with {listed}, {u} will interact with", bos=True)
