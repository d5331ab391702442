"""Dataset names -> loaders, and the processed-data cache.

`load_dataset(name, **options)` resolves `name` in `REGISTRY` (or treats an existing file path as a file of
the matching kind), then returns the cached `Dataset` from `home()/processed/<name>-v<FORMAT_VERSION>[-<hash>]/`
(interactions.parquet, items.parquet, meta.json), building and writing it atomically on first use.
Options that name user files add the files' size and modification time to the cache key.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from llmrec.data.amazon import load_amazon
from llmrec.data.build import make_dataset
from llmrec.data.collm import load_collm
from llmrec.data.lcrec_format import load_lcrec
from llmrec.data.ml100k import load_ml100k
from llmrec.data.movielens import load_ml1m, load_ml20m
from llmrec.data.sequences import load_sequences
from llmrec.data.tabular import load_atomic, load_table
from llmrec.data.types import ClickSplit, Dataset
from llmrec.errors import LlmrecError
from llmrec.paths import atomic_dir, home

FORMAT_VERSION = 1
"""Bump when the processed layout or any loader's output changes: old caches are then ignored."""


def load_collm_dataset(path: str | Path, name: str = "collm") -> Dataset:
    """The CoLLM pickles' rows (train, valid, test) as a Dataset; rating = the 0/1 label (no ratings ship)."""
    split = load_collm(path)
    rows = pd.concat([split.train, split.valid, split.test], ignore_index=True)
    raw = pd.DataFrame({"user": rows["user_id"], "item": rows["item_id"],
                        "rating": rows["label"].astype(np.float32), "timestamp": rows["timestamp"]})
    items = split.items.rename(columns={"item_id": "item"})
    return make_dataset(name, raw, items, str(path))


@dataclass(frozen=True)
class Source:
    """One registered dataset source."""

    description: str
    load: Callable[..., Dataset]
    """Builds the Dataset from its options."""
    click: Callable[..., ClickSplit] | None = None
    """For sources that come already split (CoLLM pickles): builds the ClickSplit directly."""
    path_options: tuple[str, ...] = ()
    """Options naming user files: their size and mtime join the cache key."""
    cache: bool = True
    """False when loading is as cheap as reading a cache."""


REGISTRY: dict[str, Source] = {
    "ml-100k": Source("MovieLens-100K (embedded: from the recbole wheel on PyPI, GroupLens as fallback)",
                      load_ml100k),
    "ml-1m": Source("MovieLens-1M from GroupLens", load_ml1m),
    "ml-20m": Source("MovieLens-20M from GroupLens", load_ml20m),
    "amazon": Source("Amazon reviews 2014/2018 from your files: reviews=..., meta=..., kcore=...", load_amazon,
                     path_options=("reviews", "meta")),
    "csv": Source("CSV/TSV/parquet interactions: path=..., user=, item=, rating=, timestamp=, items=, title=, text=",
                  load_table, path_options=("path", "items")),
    "recbole": Source("RecBole atomic files: inter=<file.inter>, item=<file.item>", load_atomic,
                      path_options=("inter", "item")),
    "collm": Source("CoLLM/BinLLM processed ML-1M split (*_ood2.pkl, folder or zip): path=...", load_collm_dataset,
                    click=load_collm, path_options=("path",), cache=False),
    "lcrec": Source("LC-Rec processed JSON (<Name>.inter.json, .item.json): path=<folder or .inter.json>, "
                    "dataset=<Name>", load_lcrec, path_options=("path",)),
    "sequences": Source("One sequence per line, `user item item ...` (SASRec / S3-Rec / ICLRec .txt files): "
                        "path=...", load_sequences, path_options=("path",)),
}
ALIASES = {"ml100k": "ml-100k", "movielens-100k": "ml-100k", "ml1m": "ml-1m", "movielens-1m": "ml-1m",
           "ml20m": "ml-20m", "movielens-20m": "ml-20m", "tabular": "csv", "table": "csv", "atomic": "recbole",
           "collm-ml1m": "collm", "sequence": "sequences", "seq": "sequences", "sasrec": "sequences"}
# A path given as the dataset: whole name endings first (they contain a shorter suffix), then the last suffix
# (ignoring .gz). A folder is an LC-Rec folder if it holds a *.inter.json, else a CoLLM folder.
_ENDING_KIND = ((".inter.json", ("lcrec", "path")), (".sequences.txt", ("sequences", "path")),
                (".seq", ("sequences", "path")))
_SUFFIX_KIND = {".csv": ("csv", "path"), ".tsv": ("csv", "path"), ".txt": ("csv", "path"),
                ".parquet": ("csv", "path"), ".inter": ("recbole", "inter"), ".json": ("amazon", "reviews"),
                ".jsonl": ("amazon", "reviews"), ".zip": ("collm", "path")}


def list_datasets() -> dict[str, str]:
    """Registered names and what each is."""
    return {name: source.description for name, source in sorted(REGISTRY.items())}


def resolve(name: str, options: dict) -> tuple[str, Source, dict]:
    """(canonical name, source, options) for a registered name, an alias, or a path to a data file/folder."""
    key = ALIASES.get(name.lower(), name.lower())
    if key in REGISTRY:
        return key, REGISTRY[key], dict(options)
    path = Path(name).expanduser()
    if path.exists():
        kind = _path_kind(path)
        if kind:
            return kind[0], REGISTRY[kind[0]], {kind[1]: str(path), **options}
        raise LlmrecError(f"{name}: cannot tell the format from the file name; use load_dataset('csv', path=...) "
                          "or another registered source")
    known = ", ".join(sorted(REGISTRY))
    raise LlmrecError(f"unknown dataset {name!r}; known: {known} (or a path to a data file)")


def _path_kind(path: Path) -> tuple[str, str] | None:
    """(source, option naming the path) for a file or folder given as the dataset; None if the name says nothing."""
    if path.is_dir():
        return ("lcrec", "path") if any(path.glob("*.inter.json")) else ("collm", "path")
    lower = path.name.lower()
    for ending, kind in _ENDING_KIND:
        if lower.endswith(ending):
            return kind
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    return next((_SUFFIX_KIND[s] for s in reversed(suffixes) if s in _SUFFIX_KIND), None)


def source_options(name: str) -> list[str]:
    """The options a source's loader takes, as `name=default` (or `name=` when required)."""
    params = inspect.signature(REGISTRY[name].load).parameters
    return [f"{p}=" if v.default is inspect.Parameter.empty else f"{p}={v.default}"
            for p, v in params.items() if p != "name" and v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)]


def file_option(source: Source) -> str:
    """The option a bare file path fills for this source (`--path`, `data.path`): path, inter or reviews."""
    return source.path_options[0] if source.path_options else "path"


def check_options(name: str, func: Callable, options: dict) -> None:
    """Unknown or missing loader options -> one line naming them and the accepted ones."""
    params = inspect.signature(func).parameters
    accepted = [p for p in params if p != "name"]
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise LlmrecError(f"{name}: unknown option(s) {', '.join(unknown)}; accepted: {', '.join(accepted) or 'none'}")
    missing = [p for p, v in params.items() if v.default is inspect.Parameter.empty and p not in options
               and v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)]
    if missing:
        raise LlmrecError(f"{name}: missing option(s) {', '.join(missing)}")


def options_key(source: Source, options: dict) -> dict:
    """What identifies a build: the options, plus size and mtime of the files they name."""
    key: dict = {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(options.items())}
    for opt in source.path_options:
        if options.get(opt) is not None:
            p = Path(options[opt]).expanduser().resolve()
            st = p.stat() if p.exists() else None
            key[opt] = [str(p), st.st_size if st else None, st.st_mtime_ns if st else None]
    return key


def short_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def processed_dir(name: str, source: Source, options: dict) -> Path:
    base = f"{name}-v{FORMAT_VERSION}"
    if options:
        base += "-" + short_hash(options_key(source, options))
    return home() / "processed" / base


def write_processed(ds: Dataset, path: Path, info: dict) -> None:
    with atomic_dir(path) as tmp:
        ds.interactions.to_parquet(tmp / "interactions.parquet", index=False)
        ds.items.to_parquet(tmp / "items.parquet", index=False)
        meta = {"name": ds.name, "format_version": FORMAT_VERSION, "n_users": ds.n_users, "n_items": ds.n_items,
                **info, "raw_user_ids": ds.raw_user_ids, "raw_item_ids": ds.raw_item_ids}
        (tmp / "meta.json").write_text(json.dumps(meta, default=str))


def read_processed(path: Path) -> Dataset:
    """The cached Dataset; LlmrecError (the caller rebuilds) for anything unreadable or inconsistent."""
    try:
        meta = json.loads((path / "meta.json").read_text())
        inter = pd.read_parquet(path / "interactions.parquet")
        items = pd.read_parquet(path / "items.parquet")
        if meta.get("format_version") != FORMAT_VERSION:
            raise LlmrecError(f"{path}: cache does not match format version {FORMAT_VERSION}")
        ds = Dataset(name=meta["name"], interactions=inter, items=items, n_users=int(meta["n_users"]),
                     n_items=int(meta["n_items"]), raw_user_ids=list(meta["raw_user_ids"]),
                     raw_item_ids=list(meta["raw_item_ids"]))
        consistent = (len(items) == ds.n_items - 1 == len(ds.raw_item_ids) and ds.n_users - 1 == len(ds.raw_user_ids)
                      and {"user_id", "item_id", "rating", "timestamp"} <= set(inter.columns))
    except LlmrecError:
        raise
    except Exception as exc:  # noqa: BLE001 json, OS, pyarrow, key and type errors alike: the cache is unusable
        raise LlmrecError(f"{path}: unreadable cache ({type(exc).__name__})") from None
    if not consistent:
        raise LlmrecError(f"{path}: inconsistent cache (counts or columns differ from meta.json)")
    return ds


def dataset_cache_key(name: str, **options) -> dict:
    """Identity of `load_dataset(name, **options)`'s result (used by split caches)."""
    canonical, source, options = resolve(name, options)
    return {"name": canonical, "format_version": FORMAT_VERSION, **options_key(source, options)}


def load_dataset(name: str, *, refresh: bool = False, cache: bool = True, **options) -> Dataset:
    """A dataset by registered name (see `list_datasets()`) or file path, with the loader's options.

    refresh: rebuild even if cached; cache: False to neither read nor write the processed cache.
    """
    canonical, source, options = resolve(name, options)
    check_options(canonical, source.load, options)
    if not (cache and source.cache):
        return source.load(**options)
    path = processed_dir(canonical, source, options)
    if (path / "meta.json").exists() and not refresh:
        try:
            return read_processed(path)
        except LlmrecError as exc:
            warnings.warn(f"{exc}; rebuilding", stacklevel=2)
    ds = source.load(**options)
    write_processed(ds, path, {"source": canonical, "options": options_key(source, options)})
    return ds


def load_click_split(name: str, **options) -> ClickSplit:
    """The ClickSplit of a source that comes already split (collm), as shipped; options go to its reader."""
    canonical, source, options = resolve(name, options)
    if source.click is None:
        raise LlmrecError(f"{canonical} is not split already; use llmrec.data.splits.get_click_split({canonical!r})")
    check_options(canonical, source.click, options)
    return source.click(**options)
