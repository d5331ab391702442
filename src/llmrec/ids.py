"""Ids at the inference boundary: the dataset's own (raw) ids in and out, and one rule for ids a run does not know.

The rule, the same for every method and every entry point (CLI, `Recommender` API, later an HTTP server):
- a user or item the run does not know is an error by default: "user 999999 is not in the run's data (943 users)";
- `cold_start="popularity"` (CLI `--cold-start popularity`) asks for a fallback instead, the same everywhere:
  `recommend` for an unknown user ranks the candidates (default: every item) by their number of train
  interactions; `score` gives a pair with an unknown user or item the item's share of the train interactions
  (0 for an unknown item). Fallback scores are on that scale, not the model's: `score_csv` flags their rows.
Candidates and a new user's items (`--items`) must be known items either way: a run cannot rank what it never saw.

Raw ids: splits carry `meta["raw_user_ids"]` / `meta["raw_item_ids"]` (raw[i - 1] is the source's id of internal
id i). Runs made before the maps were stored, and CoLLM's pickle split (whose ids are already the paper's), have
none: there the ids a user gives are the internal ones.
"""
from __future__ import annotations

import numpy as np

from llmrec.errors import LlmrecError, UnknownIdError

COLD_START = ("popularity",)
"""Fallbacks a caller may ask for (None: unknown ids are an error)."""


def check_cold_start(cold_start: str | None) -> None:
    if cold_start is not None and cold_start not in COLD_START:
        raise LlmrecError(f"cold_start: expected {' or '.join(COLD_START)} (or none), got {cold_start!r}")


def _as_int(value) -> int | None:
    """An internal id from an int or its text; None when it is not one."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    return None


class RunIds:
    """A run's users and items as a person names them: raw <-> internal ids, and which ids the run knows."""

    def __init__(self, n_users: int, n_items: int, known_users, raw_users: list | None = None,
                 raw_items: list | None = None, note: str | None = None):
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.known_users = {int(u) for u in known_users}
        self.raw_users = [str(r) for r in raw_users] if raw_users else None
        self.raw_items = [str(r) for r in raw_items] if raw_items else None
        self._user_of = {r: k + 1 for k, r in enumerate(self.raw_users or [])}
        self._item_of = {r: k + 1 for k, r in enumerate(self.raw_items or [])}
        self.note = None if self.has_raw else note

    @classmethod
    def of_split(cls, split, known_users, raw: bool = True) -> "RunIds":
        """The ids of a saved split: its raw maps when its meta holds them (`raw=False` ignores them)."""
        meta = getattr(split, "meta", None) or {}
        users, items = meta.get("raw_user_ids"), meta.get("raw_item_ids")
        note = None
        if not (users and items) and not str(meta.get("format", "")).startswith("collm"):
            note = "this run's split has no raw id maps (made before they were stored): ids are internal"
        return cls(split.n_users, split.n_items, known_users, users if raw else None, items if raw else None, note)

    @property
    def has_raw(self) -> bool:
        return bool(self.raw_users) and bool(self.raw_items)

    @property
    def n_known_items(self) -> int:
        return self.n_items - 1

    # -- in: what a caller gives -> internal ids (None: unknown) -------------------------------------------------
    def user(self, value, internal: bool = False) -> int | None:
        if self.has_raw and not internal:
            u = self._user_of.get(str(value).strip())
        else:
            u = _as_int(value)
        return u if u is not None and u in self.known_users else None

    def item(self, value, internal: bool = False) -> int | None:
        if self.has_raw and not internal:
            i = self._item_of.get(str(value).strip())
        else:
            i = _as_int(value)
        return i if i is not None and 1 <= i < self.n_items else None

    def unknown_user(self, value) -> UnknownIdError:
        return UnknownIdError(f"user {value} is not in the run's data ({len(self.known_users)} users)")

    def unknown_item(self, value) -> UnknownIdError:
        return UnknownIdError(f"item {value} is not in the run's data ({self.n_known_items} items)")

    def items(self, values, what: str, internal: bool = False) -> np.ndarray:
        """Known internal item ids of a non-empty list (order kept, repeats dropped); one line for the first
        unknown one."""
        values = list(values)
        if not values:
            raise LlmrecError(f"{what}: the list is empty; give at least one item id")
        out = []
        for v in values:
            i = self.item(v, internal)
            if i is None:
                raise UnknownIdError(f"{what}: {self.unknown_item(v)}")
            out.append(i)
        return np.asarray(list(dict.fromkeys(out)), dtype=np.int64)

    # -- out: internal ids -> what a caller reads -----------------------------------------------------------------
    def item_out(self, i: int, internal: bool = False):
        return self.raw_items[i - 1] if self.has_raw and not internal else int(i)

    def user_out(self, u: int, internal: bool = False):
        return self.raw_users[u - 1] if self.has_raw and not internal else int(u)
