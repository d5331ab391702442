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


def rekey_index(data, raw_item_ids: list[str], where: str) -> dict[str, list]:
    """An index `{raw item id: tokens}` (the official files: ids "0".."N-1" as in `.inter.json`) re-keyed by
    internal item id (`{"1": tokens, ...}`); entries of items the dataset lacks are dropped."""
    if not isinstance(data, dict) or not data:
        raise LlmrecError(f"{where}: expected a JSON object {{item_id: [tokens]}}")
    by_raw = {str(k).strip(): v for k, v in data.items()}
    out, missing = {}, []
    for k, raw in enumerate(raw_item_ids, start=1):
        if raw in by_raw:
            out[str(k)] = by_raw[raw]
        else:
            missing.append(raw)
    if missing:
        raise LlmrecError(f"{where}: {len(missing)} of the dataset's items have no index (first: raw id "
                          f"{missing[0]!r})")
    return out


def keyed_by_raw_ids(data, raw_item_ids: list[str], n_items: int) -> bool:
    """Does an index file name items by raw id (official) rather than by internal id 1..n_items-1 (ours)?
    Raw when every raw id is a key and not every internal id is (when both are, the two numberings coincide
    or the file covers extra items: raw, the official layout, wins)."""
    if not isinstance(data, dict) or not raw_item_ids:
        return False
    keys = {str(k).strip() for k in data}
    return all(r in keys for r in raw_item_ids) or not all(str(i) in keys for i in range(1, n_items))


def read_lcrec_index(path: str | Path, ds: Dataset, dataset: str | None = None) -> dict[str, list[str]]:
    """The official `<Name>.index.json` re-keyed by our internal item ids ({"1": tokens, ...})."""
    files = lcrec_files(path, dataset)
    if not files[".index.json"].is_file():
        raise LlmrecError(f"{files['.index.json']}: no such file")
    return rekey_index(_read_json(files[".index.json"]), ds.raw_item_ids, str(files[".index.json"]))
