"""Prompt templates and their tokenisation, with the exact token positions of the user and item slots.

Templates (`src/llmrec/prompts/*.txt`, one prompt per file) carry the official CoLLM/BinLLM wording verbatim,
including the literal backslash-n before `#Answer:`:
- `text_<domain>`: TALLRec / BinLLM stage 1 (titles only);
- `id_<domain>`: CoLLM / BinLLM (titles + `<UserID>` + `<TargetItemID>`);
- `ids_only_<domain>`: BinLLM-IO (no titles at all). The official code ships no such file; this is the `id`
  wording with the history sentence and the target title removed.
Domains other than movie/book are derived from the movie files ("movies" -> "<noun>s", "movie" -> "<noun>").

Placeholders: `<ItemTitleList>` (history titles, each double-quoted, joined with ", "; the last 10),
`<TargetItemTitle>` (double-quoted), `<UserID>` and `<TargetItemID>`. An ID slot is filled either with text
(BinLLM: "0101..." or "192.168.1.7") or with ONE embedding position (CoLLM: pass `EMBED`; the position holds a
placeholder token whose input embedding the method overwrites). Positions come from building the ids segment
by segment, never from searching the ids for a special token.

Segment boundaries fall before a space (the space moves to the start of the next segment) so that the ids match
what the tokenizer makes of the whole text; an embedding slot absorbs the space before it (in byte-level and
SentencePiece vocabularies a word carries its leading space). The candidate-dependent part (target title and
target ID onwards) starts a segment, so `ids[:candidate_start]` is identical for every candidate of one user:
`scoring.YesScorer.rank` encodes it once.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from llmrec.errors import LlmrecError

PLACEHOLDERS = ("<ItemTitleList>", "<TargetItemTitle>", "<UserID>", "<TargetItemID>")
MAX_TITLES = 10
"""History titles in a prompt (the papers' last 10 positives)."""
_PLACEHOLDER_RE = re.compile(r"(<ItemTitleList>|<TargetItemTitle>|<UserID>|<TargetItemID>)")
_ANY_TAG_RE = re.compile(r"<[A-Za-z]+>")
KINDS = ("text", "id", "ids_only")


class _Embed:
    """Sentinel type: fill an ID slot with one embedding position."""

    def __repr__(self) -> str:
        return "EMBED"


EMBED = _Embed()


@dataclass(frozen=True)
class Template:
    """A one-line prompt with placeholders."""

    name: str
    """File stem or path it came from (for error messages)."""
    text: str
    """The prompt, placeholders included."""

    def has(self, placeholder: str) -> bool:
        return placeholder in self.text


@dataclass(frozen=True)
class Prompt:
    """Token ids of one prompt plus where its parts are."""

    input_ids: tuple[int, ...]
    """Token ids, special prefix (BOS) included, ending with the tokens of '#Answer:'."""
    candidate_start: int
    """ids[:candidate_start] do not depend on the target item (the part rank_candidates shares)."""
    n_titles: int
    """History titles kept (fewer than given when the prompt had to be shortened)."""
    user_pos: int | None = None
    """Position of the user embedding slot (ID slot filled with EMBED), else None."""
    item_pos: int | None = None
    """Position of the target-item embedding slot, else None."""
    user_span: tuple[int, int] | None = None
    """[start, stop) of the user ID text (ID slot filled with text), else None."""
    item_span: tuple[int, int] | None = None
    """[start, stop) of the target-item ID text, else None."""

    def __len__(self) -> int:
        return len(self.input_ids)


def template_path(name: str) -> Path:
    return Path(str(resources.files("llmrec") / "prompts" / f"{name}.txt"))


def load_template(name_or_path: str | Path) -> Template:
    """A packaged template by name (`id_movie`) or a template file. Unknown `<Tags>` are refused."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = template_path(str(name_or_path))
    if not path.is_file():
        names = sorted(p.stem for p in template_path("x").parent.glob("*.txt"))
        raise LlmrecError(f"prompt template {str(name_or_path)!r} not found (packaged: {', '.join(names)}; "
                          f"or a path to a .txt file)")
    lines = {line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
    # the official files repeat the same prompt on several lines; different prompts are not supported
    if len(lines) != 1:
        raise LlmrecError(f"{path}: expected one prompt (one non-empty line, or identical lines), found "
                          f"{len(lines)} different lines")
    return parse_template(lines.pop(), name=str(path))


def parse_template(text: str, name: str = "<string>") -> Template:
    unknown = sorted(set(_ANY_TAG_RE.findall(text)) - set(PLACEHOLDERS))
    if unknown:
        raise LlmrecError(f"{name}: unknown placeholder(s) {', '.join(unknown)}; allowed: {', '.join(PLACEHOLDERS)}")
    for tag in PLACEHOLDERS:
        if text.count(tag) > 1:
            raise LlmrecError(f"{name}: placeholder {tag} appears {text.count(tag)} times; at most once")
    if not (text.count("<TargetItemTitle>") or text.count("<TargetItemID>")):
        raise LlmrecError(f"{name}: the prompt names no target item (<TargetItemTitle> or <TargetItemID>)")
    return Template(name=name, text=text)


def template_for(kind: str, domain: str = "movie") -> Template:
    """The packaged template of a kind (text, id, ids_only) for a domain noun (movie, book, or any noun)."""
    if kind not in KINDS:
        raise LlmrecError(f"prompt kind {kind!r} is not one of {', '.join(KINDS)}")
    if not re.fullmatch(r"[A-Za-z][A-Za-z -]*", domain or ""):
        raise LlmrecError(f"domain {domain!r} must be a singular noun (letters), e.g. movie or book")
    if template_path(f"{kind}_{domain}").is_file():
        return load_template(f"{kind}_{domain}")
    base = load_template(f"{kind}_movie")
    text = re.sub(r"\bmovies\b", f"{domain}s", base.text)
    return Template(name=f"{kind}_{domain}", text=re.sub(r"\bmovie\b", domain, text))


def format_titles(titles) -> str:
    """'"A", "B", "C"': each title double-quoted (blank titles skipped, as the official code does)."""
    return ", ".join(f'"{t.strip()}"' for t in titles if t and t.strip())


def _clean_titles(titles, max_titles: int) -> list[str]:
    kept = [str(t).strip() for t in titles if t is not None and str(t).strip()]
    return kept[-max_titles:] if max_titles else []


class PromptBuilder:
    """Builds `Prompt`s for one template and tokenizer; caches the tokenisation of repeated segments."""

    def __init__(self, template: Template | str | Path, tokenizer, max_length: int | None = None, *,
                 max_titles: int = MAX_TITLES, slot_token_id: int | None = None):
        self.template = template if isinstance(template, Template) else load_template(template)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.max_titles = max_titles
        self.parts = [p for p in _PLACEHOLDER_RE.split(self.template.text) if p]
        self.special_prefix = _special_prefix(tokenizer)
        self.context = _choose_context(tokenizer)
        for name in ("unk_token_id", "pad_token_id", "eos_token_id"):
            if slot_token_id is None:
                slot_token_id = getattr(tokenizer, name, None)
        # The slot token's own embedding is always overwritten; it only has to be a valid id.
        self.slot_token_id = 0 if slot_token_id is None else int(slot_token_id)
        self._encode = functools.lru_cache(maxsize=1 << 16)(self._encode_uncached)

    def build(self, history_titles, target_title: str | None, user_slot=None, item_slot=None) -> Prompt:
        """Prompt for one (user, target) pair, dropping the oldest titles until it fits max_length."""
        titles = _clean_titles(history_titles if self.template.has("<ItemTitleList>") else [], self.max_titles)
        self._check_slots(target_title, user_slot, item_slot)
        for n in range(len(titles), -1, -1):
            prompt = self._assemble(titles[len(titles) - n:], target_title, user_slot, item_slot)
            if self.max_length is None or len(prompt) <= self.max_length:
                return prompt
        raise LlmrecError(f"prompt for target {target_title!r} needs {len(prompt)} tokens even with no history "
                          f"titles, more than max_length={self.max_length}; raise max_length")

    def _check_slots(self, target_title, user_slot, item_slot) -> None:
        name = self.template.name
        for tag, value in (("<UserID>", user_slot), ("<TargetItemID>", item_slot)):
            if self.template.has(tag) and value is None:
                raise LlmrecError(f"template {name} has {tag} but no value was given for it")
            if not self.template.has(tag) and value is not None:
                raise LlmrecError(f"template {name} has no {tag}, yet a value was given for it")
            if value is not None and value is not EMBED and not isinstance(value, str):
                raise LlmrecError(f"{tag}: expected a code string or EMBED, got {type(value).__name__}")
            if isinstance(value, str) and (not value.strip() or value != value.strip()):
                raise LlmrecError(f"{tag}: the code {value!r} is empty or has surrounding spaces")
        if self.template.has("<TargetItemTitle>") and not (target_title and str(target_title).strip()):
            raise LlmrecError(f"template {name} has <TargetItemTitle> but the target title is empty")

    def _segments(self, titles, target_title, user_slot, item_slot):
        """[(kind, payload)]: ("text", str) | ("code", (slot, str)) | ("embed", slot) | ("candidate", None)."""
        segments, buffer, carry = [], "", ""
        candidate_seen = False

        def flush(keep_space: bool):
            nonlocal buffer, carry
            text = carry + buffer
            carry = ""
            if text.endswith(" "):
                text = text[:-1]
                carry = " " if keep_space else ""
            if text:
                segments.append(("text", text))
            buffer = ""

        for part in self.parts:
            if part in ("<TargetItemTitle>", "<TargetItemID>") and not candidate_seen:
                candidate_seen = True
                flush(keep_space=True)
                segments.append(("candidate", None))
            if part == "<ItemTitleList>":
                buffer += format_titles(titles)
            elif part == "<TargetItemTitle>":
                buffer += f'"{str(target_title).strip()}"'
            elif part in ("<UserID>", "<TargetItemID>"):
                slot = "user" if part == "<UserID>" else "item"
                value = user_slot if slot == "user" else item_slot
                if value is EMBED:
                    flush(keep_space=False)
                    segments.append(("embed", slot))
                else:
                    flush(keep_space=True)
                    text, carry = carry + value, ""
                    segments.append(("code", (slot, text)))
            else:
                buffer += part
        flush(keep_space=False)
        return segments

    def _assemble(self, titles, target_title, user_slot, item_slot) -> Prompt:
        ids = list(self.special_prefix)
        spans, positions, candidate_start, first = {}, {}, None, True
        for kind, payload in self._segments(titles, target_title, user_slot, item_slot):
            if kind == "candidate":
                candidate_start = len(ids)
            elif kind == "embed":
                positions[payload] = len(ids)
                ids.append(self.slot_token_id)
            else:
                slot, text = payload if kind == "code" else (None, payload)
                start = len(ids)
                ids.extend(self._encode(text, first))
                if slot is not None:
                    spans[slot] = (start, len(ids))
            first = False
        return Prompt(input_ids=tuple(ids), candidate_start=candidate_start, n_titles=len(titles),
                      user_pos=positions.get("user"), item_pos=positions.get("item"),
                      user_span=spans.get("user"), item_span=spans.get("item"))

    def _encode_uncached(self, text: str, at_start: bool) -> tuple[int, ...]:
        """Ids of `text` as it reads mid-prompt: encoded after a context that is then cut off, so that
        SentencePiece tokenizers do not add their start-of-text space and byte-level ones see the same
        pre-token boundaries as in the whole prompt."""
        if at_start or self.context is None:
            return tuple(_encode(self.tokenizer, text))
        ctx_ids = _encode(self.tokenizer, self.context)
        ids = _encode(self.tokenizer, self.context + text)
        if ids[:len(ctx_ids)] == ctx_ids:
            return tuple(ids[len(ctx_ids):])
        return tuple(_encode(self.tokenizer, text))


def build_prompt(template: Template | str | Path, history_titles, target_title: str | None, user_slot, item_slot,
                 tokenizer, max_length: int | None = None, **kwargs) -> Prompt:
    """One-off `PromptBuilder(template, tokenizer, max_length).build(...)`; use a builder for many prompts."""
    return PromptBuilder(template, tokenizer, max_length, **kwargs).build(history_titles, target_title,
                                                                         user_slot, item_slot)


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _special_prefix(tokenizer) -> tuple[int, ...]:
    """The ids a tokenizer puts in front of every text (BOS for Llama/Gemma, nothing for SmolLM2/GPT-2)."""
    probe = "Question"
    with_special = list(tokenizer(probe)["input_ids"])
    plain = _encode(tokenizer, probe)
    for i in range(len(with_special) - len(plain) + 1):
        if with_special[i:i + len(plain)] == plain:
            return tuple(with_special[:i])
    return ()


def _choose_context(tokenizer) -> str | None:
    """A short text after which mid-prompt segments are encoded (see PromptBuilder._encode_uncached)."""
    for ctx in ("a", "x", "\n"):
        ids = _encode(tokenizer, ctx)
        if len(ids) == 1 and _encode(tokenizer, ctx + " Yes")[:1] == ids and _encode(tokenizer, ctx + ".")[:1] == ids:
            return ctx
    return None
