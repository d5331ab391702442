"""LC-Rec's processed data format (the official repository's `data/<Name>/` folders) as a dataset source.

Files, for a dataset named <Name> (e.g. Instruments):
- `<Name>.inter.json`: {user_id: [item_id, ...]} each user's items in chronological order (required);
- `<Name>.item.json`: {item_id: {"title": ..., "description": ..., ...}} (optional: items without text get "");
- `<Name>.index.json`: {item_id: ["<a_1>", "<b_2>", ...]} the official item indices (optional, `read_lcrec_index`);
- `<Name>.user.json`: LLM-written preferences and intentions (optional, read by the LC-Rec method).
The files carry no timestamps: each interaction's timestamp is its position in the user's list, so the
leave-one-out split takes the last item as test and the second-to-last as valid, as the official code does.
Item text: `title`, and `description` as the text column (what the official alignment tasks and embeddings use).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.data.build import make_dataset
from llmrec.data.types import Dataset
from llmrec.errors import LlmrecError

SUFFIXES = (".inter.json", ".item.json", ".index.json", ".user.json")


def lcrec_files(path: str | Path, dataset: str | None = None) -> dict[str, Path]:
    """{suffix: file} of one LC-Rec dataset: `path` is its folder or its `.inter.json` file."""
    path = Path(path).expanduser()
    if path.is_file() and path.name.endswith(".inter.json"):
        folder, dataset = path.parent, dataset or path.name[: -len(".inter.json")]
    elif path.is_dir():
        folder = path
        if dataset is None:
            found = sorted(p.name[: -len(".inter.json")] for p in folder.glob("*.inter.json"))
            if len(found) != 1:
                raise LlmrecError(f"{folder}: expected exactly one *.inter.json (found {len(found)}); "
                                  "pass dataset=<Name>")
            dataset = found[0]
    else:
        raise LlmrecError(f"{path}: not an LC-Rec folder or <Name>.inter.json file")
    files = {s: folder / f"{dataset}{s}" for s in SUFFIXES}
    if not files[".inter.json"].is_file():
        raise LlmrecError(f"{files['.inter.json']}: no such file")
    return files


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LlmrecError(f"{path}: not readable JSON ({type(exc).__name__}: {exc})") from None


def load_lcrec(path: str | Path, dataset: str | None = None) -> Dataset:
    """The interactions and item text of an LC-Rec dataset folder as a `Dataset`."""
    files = lcrec_files(path, dataset)
    inters = _read_json(files[".inter.json"])
    if not isinstance(inters, dict) or not inters:
        raise LlmrecError(f"{files['.inter.json']}: expected a non-empty object {{user_id: [item ids]}}")
    users, items, pos = [], [], []
    for user, seq in inters.items():
        if not isinstance(seq, list):
            raise LlmrecError(f"{files['.inter.json']}: user {user!r}: expected a list of item ids")
        users.extend([str(user)] * len(seq))
        items.extend(str(i) for i in seq)
        pos.extend(range(len(seq)))
    raw = pd.DataFrame({"user": users, "item": items, "rating": np.float32(1.0), "timestamp": pos})
    item_frame = None
    if files[".item.json"].is_file():
        feats = _read_json(files[".item.json"])
        if not isinstance(feats, dict):
            raise LlmrecError(f"{files['.item.json']}: expected an object {{item_id: {{title, description}}}}")
        rows = []
        for item, f in feats.items():
            if not isinstance(f, dict):
                raise LlmrecError(f"{files['.item.json']}: item {item!r}: expected an object with title/description")
            rows.append((str(item), str(f.get("title") or ""), str(f.get("description") or "")))
        item_frame = pd.DataFrame(rows, columns=["item", "title", "text"])
    name = files[".inter.json"].name[: -len(".inter.json")]
    return make_dataset(f"lcrec-{name}", raw, item_frame, str(files[".inter.json"]))


def read_lcrec_index(path: str | Path, ds: Dataset, dataset: str | None = None) -> dict[str, list[str]]:
    """The official `<Name>.index.json` re-keyed by our internal item ids ({"1": tokens, ...})."""
    files = lcrec_files(path, dataset)
    if not files[".index.json"].is_file():
        raise LlmrecError(f"{files['.index.json']}: no such file")
    raw = _read_json(files[".index.json"])
    internal = {r: k + 1 for k, r in enumerate(ds.raw_item_ids)}
    out = {}
    for item, tokens in (raw.items() if isinstance(raw, dict) else []):
        if str(item) in internal:
            out[str(internal[str(item)])] = tokens
    missing = len(ds.raw_item_ids) - len(out)
    if missing:
        raise LlmrecError(f"{files['.index.json']}: {missing} interacted items have no index")
    return out
