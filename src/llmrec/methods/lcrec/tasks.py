"""LC-Rec's alignment tasks as instruction samples, their tokenisation, and the training / evaluation Tasks.

Samples (official `data.py`, one template drawn per sample, seeded):
- `seqrec`: every prefix of each user's training sequence: history indices (the last `max_history`, joined by
  ", ") -> the next item's index;
- `item2index` / `index2item`: an item's title and/or description <-> its index;
- `fusionseqrec`: the same prefixes: history indices -> next item's title or description; history titles -> next
  index;
- `itemsearch` and `preferenceobtain`: need LLM-written user texts (the official `<name>.user.json`: explicit
  preferences and vague intentions). Without them they are skipped with a message, never made up;
- `seqrec_all_positions` (ours, not the paper's): the response is a window of the user's training sequence,
  items spelled one after another (no separators, no EOS), with the loss on every index token of every item but
  the first: one forward trains up to `max_history` next-item targets where a `seqrec` sample trains one.
  Windows hold max_history + 1 items and overlap by one, so every item from the second on is a target once,
  read after at most max_history items (as an evaluation prompt shows them).
A template is only drawn among those whose fields the sample has (no title -> no title templates). Titles are
stripped of trailing ".!?,;:`" as the official code does; descriptions are the item's text column, cleaned.

Per-task sampling ratio r: r <= 1 keeps a seeded random share r of the task's samples, r > 1 repeats them
(floor(r) full passes, each with its own template draws, plus a share of the rest); 0 drops the task.

Tokens: prompt = the Alpaca wrapper ending in "### Response:" (or ours, the compact "...\nResponse:"), response =
the answer then EOS; the loss is the cross-entropy on the response tokens only (all-positions samples: from the
second item on). Batches are left-padded with explicit position ids, so every row's
response sits in the last columns and only those positions go through the LM head (`logits_to_keep`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from llmrec.data.types import SequenceSplit
from llmrec.errors import LlmrecError
from llmrec.methods.lcrec.config import PROMPT_KINDS, SEQUENCE_TASK, TASKS
from llmrec.methods.lcrec.embeddings import clean_text
from llmrec.methods.lcrec.generate import constrained_beam_search, left_pad
from llmrec.methods.lcrec.teacher import NextItemTeacher
from llmrec.methods.lcrec.templates import SEQUENCE_INSTRUCTION, TEMPLATES, WRAPPERS
from llmrec.methods.lcrec.trie import IndexTrie
from llmrec.methods.lcrec.vocab import ItemIndex

NEXT_ITEM_TASKS = ("seqrec", "fusionseqrec", "itemsearch", SEQUENCE_TASK)
"""Tasks whose index responses are next-item targets (counted in `Sample.targets`)."""
TEXT_TASKS = ("itemsearch", "preferenceobtain")
"""Tasks that need LLM-written user texts."""
_FIELD_NAMES = ("inters", "inter_titles", "item", "title", "description", "explicit_preference",
                "user_related_intention", "item_related_intention", "query")


@dataclass
class Sample:
    """One instruction sample."""

    task: str
    prompt: str
    """The wrapped instruction, ending with '### Response:'."""
    response: str
    """The answer (no EOS; the tokeniser adds it)."""
    sequence: list[str] | None = None
    """All-positions samples: the response's items, spelled, in order (the loss skips the first)."""
    targets: int = 0
    """Next-item index targets the sample trains (seqrec: 1, all-positions: items - 1, alignment tasks: 0)."""
    items: list[int] | None = None
    """Samples with targets: the user's items up to and including them (its last `targets` items), what a
    teacher reads (`teacher.NextItemTeacher`)."""


@dataclass
class UserText:
    """LLM-written user texts (LC-Rec's `<name>.user.json`), keyed by internal user id."""

    preferences: dict[int, list[str]] = field(default_factory=dict)
    """Explicit preference texts per user (one is drawn per sample)."""
    intentions: dict[int, dict] = field(default_factory=dict)
    """Training intentions per user: {"user": user-related text, "item": item-related text, "target": item id,
    "history": [item ids]}."""

    @classmethod
    def for_dataset(cls, path: str | Path, dataset) -> "UserText":
        """Read the file for a `Dataset` whose raw ids it uses (e.g. `load_dataset("lcrec", path=...)`)."""
        return cls.load(path, {r: k + 1 for k, r in enumerate(dataset.raw_user_ids)},
                        {r: k + 1 for k, r in enumerate(dataset.raw_item_ids)})

    @classmethod
    def load(cls, path: str | Path, user_ids: dict[str, int], item_ids: dict[str, int]) -> "UserText":
        """Read the official file (user_explicit_preference {uid: [texts]}, user_vague_intention {"train": {uid:
        {"querys": [user, item], "item": iid, "inters": [iids]}}}), mapping raw ids to internal ones."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            prefs = data.get("user_explicit_preference", {})
            vague = data.get("user_vague_intention", {}).get("train", {})
        except (OSError, json.JSONDecodeError, AttributeError) as exc:
            raise LlmrecError(f"{path}: cannot read user texts ({type(exc).__name__})") from None
        out = cls()
        for uid, texts in prefs.items():
            if str(uid) in user_ids and texts:
                out.preferences[user_ids[str(uid)]] = [str(t) for t in (texts if isinstance(texts, list) else [texts])]
        for uid, v in vague.items():
            try:
                q = v["querys"]
                target, hist = item_ids[str(v["item"])], [item_ids[str(i)] for i in v["inters"]]
            except (KeyError, TypeError):
                raise LlmrecError(f"{path}: user_vague_intention.train[{uid!r}]: expected querys, item, inters "
                                  "naming known items") from None
            if str(uid) in user_ids:
                out.intentions[user_ids[str(uid)]] = {"user": str(q[0]), "item": str(q[1]), "target": target,
                                                      "history": hist}
        return out


class ItemText:
    """Titles and descriptions of the catalogue, as the templates use them."""

    def __init__(self, items: pd.DataFrame):
        frame = items.sort_values("item_id")
        self.title = {int(i): clean_text(t).strip().strip(".!?,;:`").strip()
                      for i, t in zip(frame["item_id"], frame["title"])}
        self.description = {int(i): clean_text(t) for i, t in zip(frame["item_id"], frame["text"])}


def wrap(instruction: str, response: str = "", wrapper: str = "alpaca") -> str:
    """The instruction in the named wrapper (`templates.WRAPPERS`), followed by `response`."""
    if wrapper not in WRAPPERS:
        raise LlmrecError(f"prompt wrapper: expected one of {', '.join(WRAPPERS)}, got {wrapper!r}")
    return WRAPPERS[wrapper].format(instruction=instruction, response=response)


def _fields(template: tuple[str, str]) -> set[str]:
    return {f for f in _FIELD_NAMES if "{" + f + "}" in template[0] + template[1]}


def _fill(template: tuple[str, str], values: dict, wrapper: str = "alpaca") -> Sample | None:
    need = _fields(template)
    if any(not values.get(f) for f in need):
        return None
    return Sample("", wrap(template[0].format(**values), wrapper=wrapper), template[1].format(**values))


def history_values(history, spelled: list[str], text: ItemText, max_history: int) -> dict:
    """{inters, inter_titles} of a history; spelled[i] is item i's index text."""
    hist = [int(i) for i in history][-max_history:] if max_history > 0 else [int(i) for i in history]
    titles = [f'"{text.title[i]}"' for i in hist if text.title.get(i)]
    return {"inters": ", ".join(spelled[i] for i in hist), "inter_titles": ", ".join(titles)}


def _last(history, max_history: int) -> list[int]:
    hist = [int(i) for i in history]
    return hist[-max_history:] if max_history > 0 else hist


def seqrec_prompt(history, index: ItemIndex, max_history: int = 20, template: int = 0,
                  wrapper: str = "alpaca") -> str:
    """The evaluation prompt (official test: seqrec template 0) for a history of item ids."""
    instruction = TEMPLATES["seqrec"][template][0].format(inters=", ".join(
        index.spell(i) for i in _last(history, max_history)))
    return wrap(instruction, wrapper=wrapper)


def prompt_ids(tokenizer, history, index: ItemIndex, *, kind: str = "seqrec", max_history: int = 20,
               wrapper: str = "alpaca") -> list[int]:
    """Token ids after which the next item is generated: kind 'seqrec' (the paper's template-0 question) or
    'sequence' (ours: the all-positions prompt and the last `max_history` items spelled, as in training)."""
    if kind == "seqrec":
        return list(tokenizer(seqrec_prompt(history, index, max_history, wrapper=wrapper))["input_ids"])
    if kind != "sequence":
        raise LlmrecError(f"evaluation prompt: expected one of {', '.join(PROMPT_KINDS)}, got {kind!r}")
    items = "".join(index.spell(i) for i in _last(history, max_history))
    return list(tokenizer(wrap(SEQUENCE_INSTRUCTION, wrapper=wrapper))["input_ids"]) + \
        (list(tokenizer(items, add_special_tokens=False)["input_ids"]) if items else [])


def _picks(n: int, ratio: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Candidate positions for a sampling ratio: floor(ratio) full passes, then a seeded share of the rest."""
    whole, frac = int(math.floor(ratio)), ratio - math.floor(ratio)
    picks = [np.arange(n)] * whole
    if frac > 0:
        picks.append(np.sort(rng.choice(n, size=int(round(frac * n)), replace=False)))
    return picks


def _draw(task: str, candidates: list[dict], ratio: float, rng: np.random.Generator,
          wrapper: str = "alpaca") -> list[Sample]:
    if ratio <= 0 or not candidates:
        return []
    out = []
    templates = [(t, _fields(t)) for t in TEMPLATES[task]]
    for pick in _picks(len(candidates), ratio, rng):
        for c in pick.tolist():
            values = candidates[c]
            usable = [t for t, need in templates if all(values.get(f) for f in need)]
            if not usable:
                continue
            template = usable[int(rng.integers(len(usable)))]
            s = _fill(template, values, wrapper)
            s.task = task
            s.targets = int(task in NEXT_ITEM_TASKS and template[1] == "{item}")
            s.items = values.get("_items") if s.targets else None
            out.append(s)
    return out


def sequence_windows(seq, max_history: int) -> list[list[int]]:
    """Windows of max_history + 1 items (the whole sequence when max_history <= 0), overlapping by one: every
    item from the second on is a target of exactly one window."""
    seq = [int(i) for i in seq]
    size = max_history + 1 if max_history > 0 else max(len(seq), 2)
    return [seq[s:s + size] for s in range(0, max(len(seq) - 1, 0), size - 1)]


def windows_with_context(seq, max_history: int) -> list[tuple[list[int], list[int]]]:
    """`sequence_windows` of a sequence, each with the sequence up to and including its last item."""
    seq, out, start = [int(i) for i in seq], [], 0
    for w in sequence_windows(seq, max_history):
        out.append((w, seq[:start + len(w)]))
        start += len(w) - 1
    return out


def build_samples(split: SequenceSplit, index: ItemIndex, ratios: dict[str, float], *, max_history: int = 20,
                  seed: int = 42, user_text: UserText | None = None, log: Callable[[str], None] = print,
                  wrapper: str = "alpaca") -> tuple[list[Sample], dict]:
    """Training samples of the requested tasks (see module docstring) and a summary {task: count or reason}."""
    unknown = [t for t in ratios if t not in TASKS]
    if unknown:
        raise LlmrecError(f"unknown LC-Rec task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}")
    rng = np.random.default_rng(seed)
    text = ItemText(split.items)
    spelled = [""] + [index.spell(i) for i in range(1, index.n_items)]
    summary: dict = {}
    samples: list[Sample] = []
    pairs = []  # (history, target) for every prefix of every training sequence
    for seq in split.users["train"]:
        seq = [int(i) for i in seq]
        pairs.extend((seq[:i], seq[i]) for i in range(1, len(seq)))
    for task in TASKS:
        ratio = float(ratios.get(task, 0.0))
        if ratio <= 0:
            continue
        if task == SEQUENCE_TASK:
            windows = [wc for seq in split.users["train"] for wc in windows_with_context(seq, max_history)]
            prompt = wrap(SEQUENCE_INSTRUCTION, wrapper=wrapper)
            got = [Sample(task, prompt, "".join(spelled[i] for i in w), sequence=[spelled[i] for i in w],
                          targets=len(w) - 1, items=upto)
                   for pick in _picks(len(windows), ratio, rng) for w, upto in (windows[c] for c in pick.tolist())]
            summary[task] = len(got)
            samples.extend(got)
            continue
        if task in ("seqrec", "fusionseqrec"):
            cands = [{**history_values(h, spelled, text, max_history), "item": spelled[t], "_items": h + [t],
                      "title": text.title.get(t, ""), "description": text.description.get(t, "")} for h, t in pairs]
        elif task in ("item2index", "index2item"):
            cands = [{"item": spelled[i], "title": text.title.get(i, ""),
                      "description": text.description.get(i, "")} for i in range(1, index.n_items)]
        elif task == "preferenceobtain":
            if not user_text or not user_text.preferences:
                summary[task] = "skipped: the dataset has no LLM-written user preferences"
                log(f"LC-Rec: task {task} {summary[task]}")
                continue
            train = dict(zip(split.users["user_id"].tolist(), split.users["train"].tolist()))
            # one preference text drawn per sample at fill time: expand per user
            cands = [{**history_values(train[u], spelled, text, max_history),
                      "explicit_preference": prefs[int(rng.integers(len(prefs)))]}
                     for u, prefs in sorted(user_text.preferences.items()) if u in train]
        else:  # itemsearch
            if not user_text or not user_text.intentions:
                summary[task] = "skipped: the dataset has no LLM-written user intentions"
                log(f"LC-Rec: task {task} {summary[task]}")
                continue
            cands = []
            for u, it in sorted(user_text.intentions.items()):
                prefs = user_text.preferences.get(u, [])
                cands.append({**history_values(it["history"], spelled, text, max_history),
                              "item": spelled[it["target"]], "_items": list(it["history"]) + [it["target"]],
                              "user_related_intention": it["user"],
                              "item_related_intention": it["item"],
                              "query": [it["user"], it["item"]][int(rng.integers(2))],
                              "explicit_preference": prefs[int(rng.integers(len(prefs)))] if prefs else ""})
        got = _draw(task, cands, ratio, rng, wrapper)
        summary[task] = len(got)
        samples.extend(got)
    if not samples:
        raise LlmrecError("LC-Rec: no training samples (check the task ratios and that users have train items)")
    return samples, summary


def encode(tokenizer, sample: Sample, max_length: int = 512) -> tuple[list[int], int]:
    """(token ids of prompt + response + EOS, position of the first token with loss: the number of prompt
    tokens). Over `max_length`: the response keeps at most half of it, the prompt loses tokens from its start.
    All-positions samples: prompt + items (no EOS), the loss from the second item on; never cut."""
    prompt = list(tokenizer(sample.prompt)["input_ids"])
    if sample.sequence is not None:
        first = len(tokenizer(sample.sequence[0], add_special_tokens=False)["input_ids"])
        response = list(tokenizer("".join(sample.sequence), add_special_tokens=False)["input_ids"])
        if len(prompt) + len(response) > max_length:
            raise LlmrecError(f"LC-Rec: an all-positions sample has {len(prompt) + len(response)} tokens, over "
                              f"max_length={max_length}; raise max_length or lower max_history")
        return prompt + response, len(prompt) + first
    response = list(tokenizer(sample.response, add_special_tokens=False)["input_ids"]) + [tokenizer.eos_token_id]
    if len(prompt) + len(response) > max_length:
        response = response[: max(1, max_length // 2)] if len(response) > max_length // 2 else response
        prompt = prompt[len(prompt) - (max_length - len(response)):]
    return prompt + response, len(prompt)


class SFTTask:
    """`llm.train.Task` over samples: loss = mean cross-entropy over the response tokens of a batch.

    Samples are tokenised when a batch first needs them (a CPU budget touches a small share of them).
    lr_groups: `param_groups()` for the loop, e.g. the new token rows at their own learning rate.
    trie: with it (`LCRecConfig.item_loss="trie"`, ours), a response token that continues an item index is
    scored by the softmax over the children its prefix has in the trie, not over the whole vocabulary: the
    loss is then the item likelihood the constrained beam search ranks by; other tokens keep the full softmax.
    teacher, teacher_weight w (`LCRecConfig.teacher_weight`, ours): the index tokens of a sample's next-item
    targets are trained on (1 - w) * their token + w * the teacher's distribution over the children of their
    prefix (`teacher.NextItemTeacher`); alignment-task tokens keep their token."""

    def __init__(self, model, tokenizer, samples: list[Sample], max_length: int = 512,
                 lr_groups: list[dict] | None = None, trie: IndexTrie | None = None,
                 teacher: NextItemTeacher | None = None, teacher_weight: float = 0.0):
        self.model = model
        self.tokenizer = tokenizer
        self.samples = samples
        self.max_length = max_length
        self.pad_token_id = tokenizer.pad_token_id
        self.lr_groups = lr_groups or []
        self.trie = trie
        self.teacher = teacher if teacher_weight > 0 else None
        self.teacher_weight = teacher_weight
        self._levels = trie if trie is not None else (self.teacher.trie if self.teacher is not None else None)
        self._encoded: dict[int, tuple[list[int], int]] = {}
        self._nodes: dict[int, tuple[list[int], list[int], list[int]]] = {}

    def param_groups(self) -> list[dict]:
        return self.lr_groups

    def encoded(self, row: int) -> tuple[list[int], int]:
        if row not in self._encoded:
            self._encoded[row] = encode(self.tokenizer, self.samples[row], self.max_length)
        return self._encoded[row]

    def label_nodes(self, row: int) -> tuple[list[int], list[int], list[int]]:
        """`IndexTrie.token_nodes` of the row's tokens from its first loss position on."""
        if row not in self._nodes:
            seq, n_prompt = self.encoded(row)
            self._nodes[row] = tuple(x[n_prompt:] for x in self._levels.token_nodes(seq))
        return self._nodes[row]

    def teacher_rows(self, row: int) -> tuple[list[int], list[torch.Tensor]]:
        """(loss positions of the row's next-item index tokens, per level the teacher's targets [n, K_level] in
        the order of those positions); ([], []) when the row has no next-item target."""
        sample = self.samples[row]
        if not sample.targets or not sample.items:
            return [], []
        levels = self.label_nodes(row)[0]
        at = [p for p, lv in enumerate(levels) if lv >= 0][: sample.targets * self._levels.levels]
        if [levels[p] for p in at] != list(range(self._levels.levels)) * sample.targets:
            raise LlmrecError(f"LC-Rec: a {sample.task} sample's response does not spell its {sample.targets} "
                              "target item(s) index token by index token")
        return at, self.teacher.targets(sample.items, sample.targets)

    def trainable_module(self):
        return self.model

    def collate(self, rows: list[int]) -> dict:
        seqs = [self.encoded(r) for r in rows]
        width = max(len(ids) for ids, _ in seqs)
        ids = torch.full((len(seqs), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        labels = torch.full((len(seqs), width), -100, dtype=torch.long)
        for b, (seq, n_prompt) in enumerate(seqs):  # n_prompt: the first position with loss
            start = width - len(seq)
            ids[b, start:] = torch.as_tensor(seq)
            mask[b, start:] = 1
            labels[b, start + n_prompt:] = torch.as_tensor(seq[n_prompt:])
        keep = max(len(seq) - n for seq, n in seqs)  # loss tokens sit in the last `keep` columns
        batch = {"input_ids": ids, "attention_mask": mask, "position_ids": (mask.cumsum(1) - 1).clamp(min=0),
                 "labels": labels[:, width - keep:], "n_tokens": int(mask.sum())}
        if self._levels is not None:  # per loss position: trie level (-1: not an index token), node, child
            trie_rows = torch.zeros((3, len(seqs), keep), dtype=torch.long)
            trie_rows[0] = -1
            for b, r in enumerate(rows):
                got = torch.as_tensor(self.label_nodes(r), dtype=torch.long)
                trie_rows[:, b, keep - got.shape[1]:] = got
            batch["label_level"], batch["label_node"], batch["label_child"] = trie_rows
        if self.teacher is not None:  # flat loss positions with a teacher target, and the targets per level
            where, soft = [], [[] for _ in range(self._levels.levels)]
            for b, (r, (seq, n_prompt)) in enumerate(zip(rows, seqs)):
                at, q = self.teacher_rows(r)
                offset = b * keep + keep - (len(seq) - n_prompt)
                where.extend(offset + p for p in at)
                for lv, q_lv in enumerate(q):
                    soft[lv].append(q_lv)
            batch["teacher_at"] = torch.as_tensor(where, dtype=torch.long)
            batch["teacher_q"] = [torch.cat(q) if q else torch.zeros(0, len(self._levels.level_tokens[lv]))
                                  for lv, q in enumerate(soft)]
        return batch

    def loss(self, batch: dict) -> torch.Tensor:
        keep = batch["labels"].shape[1]
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         position_ids=batch["position_ids"], logits_to_keep=keep + 1)
        logits = out.logits[:, :-1].float()  # position j predicts token j + 1
        logits, labels = logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1)
        if self._levels is None:
            return F.cross_entropy(logits, labels, ignore_index=-100)
        level = batch["label_level"].reshape(-1)
        node, child = batch["label_node"].reshape(-1), batch["label_child"].reshape(-1)
        scored = labels != -100
        # index tokens are scored by level (over the trie children, or the whole vocabulary's softmax read at the
        # level's tokens), so a teacher's distribution over the children applies in either case
        by_level = scored & (level >= 0)
        full = scored & ~by_level
        total = F.cross_entropy(logits[full], labels[full], reduction="sum") if full.any() else logits.new_zeros(())
        taught = torch.zeros_like(scored)  # the k-th taught position of a level (flat order) has teacher_q[level][k]
        if self.teacher is not None:
            taught[batch["teacher_at"]] = True
        w = self.teacher_weight
        for lv in range(self._levels.levels):
            at = by_level & (level == lv)
            if not at.any():
                continue
            if self.trie is not None:
                logp = self.trie.child_log_probs(logits[at], lv, node[at])
            else:
                logp = F.log_softmax(logits[at], dim=-1)[:, self._levels.level_tokens[lv].to(logits.device)]
            hard = -logp.gather(1, child[at, None]).squeeze(1)
            soft_rows = taught[at]
            if soft_rows.any():
                q = batch["teacher_q"][lv].to(logp.dtype)
                soft = -(q * logp[soft_rows].masked_fill(q <= 0, 0.0)).sum(1)  # no 0 * -inf off the children
                hard = hard.clone()
                hard[soft_rows] = (1 - w) * hard[soft_rows] + w * soft
            total = total + hard.sum()
        return total / scored.sum().clamp(min=1)

    def predict(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError("SFTTask trains only; evaluate with SeqRecEvalTask")


class _PromptEvalTask:
    """What the evaluation-only tasks share: a batch is its row numbers, the module is the model, no loss."""

    def trainable_module(self):
        return self.model

    def collate(self, rows: list[int]) -> dict:
        return {"rows": torch.as_tensor(rows, dtype=torch.long)}

    def loss(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} only evaluates")


class SeqRecEvalTask(_PromptEvalTask):
    """`llm.train.Task` whose predict() is the 1-based rank of each row's target among the constrained beam
    search's items (inf = not returned, a miss at every cut-off): `fit` evaluates NDCG@10 on it.

    Row r is prompt r // len(views) under view r % len(views): views[v] True leaves the prompt's `exclude`
    items (the user's history) out of the search, False lets them come back (the paper's way). Both views of a
    prompt in one batch share its forward."""

    def __init__(self, model, prompts: list[list[int]], targets: list[int], trie: IndexTrie, *,
                 num_beams: int = 20, pad_token_id: int, eos_token_id: int | None, exclude: list | None = None,
                 views: tuple[bool, ...] = (False,), normalize: str = "vocab"):
        if len(prompts) != len(targets) or (exclude is not None and len(exclude) != len(prompts)):
            raise LlmrecError("SeqRecEvalTask: prompts, targets and exclusions differ in length")
        if any(views) and exclude is None:
            raise LlmrecError("SeqRecEvalTask: a view that excludes items needs `exclude`")
        self.model, self.prompts, self.targets, self.trie = model, prompts, list(targets), trie
        self.num_beams, self.pad_token_id, self.eos_token_id = num_beams, pad_token_id, eos_token_id
        self.exclude, self.views, self.normalize = exclude, tuple(views), normalize

    @property
    def n_rows(self) -> int:
        return len(self.prompts) * len(self.views)

    def predict(self, batch: dict) -> torch.Tensor:
        V = len(self.views)
        pairs = [divmod(r, V) for r in batch["rows"].tolist()]
        exclude = [self.exclude[p] if self.views[v] else None for p, v in pairs] if any(self.views) else None
        res = constrained_beam_search(self.model, [self.prompts[p] for p, _ in pairs], self.trie,
                                      num_beams=self.num_beams, pad_token_id=self.pad_token_id,
                                      eos_token_id=self.eos_token_id, exclude=exclude, normalize=self.normalize)
        return res.ranks([self.targets[p] for p, _ in pairs]).float()


class NextItemNLLTask(_PromptEvalTask):
    """`llm.train.Task` whose predict() is each row's negative log-likelihood (nats) of its target item's index,
    teacher-forced after its prompt: one forward per row and no search (`LCRecConfig.valid_metric="nll"`, ours).
    Index tokens are normalised as the beam search normalises them (`normalize`), then EOS is scored when
    `eos_token_id` is given, so the value is minus the search's score of the target."""

    def __init__(self, model, prompts: list[list[int]], targets: list[int], trie: IndexTrie,
                 item_token_ids: np.ndarray, *, pad_token_id: int, eos_token_id: int | None = None,
                 normalize: str = "vocab"):
        if len(prompts) != len(targets):
            raise LlmrecError("NextItemNLLTask: prompts and targets differ in length")
        self.model, self.prompts, self.targets, self.trie = model, prompts, list(targets), trie
        self.table = np.asarray(item_token_ids, dtype=np.int64)
        self.pad_token_id, self.normalize = pad_token_id, normalize
        self.eos_token_id = None if normalize == "trie" else eos_token_id

    @property
    def n_rows(self) -> int:
        return len(self.prompts)

    def predict(self, batch: dict) -> torch.Tensor:
        rows = batch["rows"].tolist()
        targets = [self.targets[r] for r in rows]
        eos = [self.eos_token_id] if self.eos_token_id is not None else []
        answers = [self.table[t].tolist() + eos for t in targets]
        device = next(self.model.parameters()).device
        ids, mask = left_pad([self.prompts[r] + a for r, a in zip(rows, answers)], self.pad_token_id, device)
        n = len(answers[0])
        # left padding puts every answer in the last n columns; column j predicts column j + 1
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0),
                            logits_to_keep=n + 1).logits.float()[:, :-1]
        answer = torch.as_tensor(answers, device=device)
        if self.normalize == "vocab":
            return -F.log_softmax(logits, dim=-1).gather(2, answer[..., None]).squeeze(-1).sum(1)
        items = torch.as_tensor(targets, device=device)
        nll = torch.zeros(len(rows), device=device)
        for level in range(self.trie.levels):
            nodes = torch.zeros_like(items) if level == 0 else self.trie.item_node[level - 1].to(device)[items]
            k = torch.searchsorted(self.trie.level_tokens[level].to(device), answer[:, level].contiguous())
            nll -= self.trie.child_log_probs(logits[:, level], level, nodes).gather(1, k[:, None]).squeeze(1)
        return nll
