"""Splits: click prediction (the CoLLM / BinLLM protocol) and leave-one-out sequences, cached by their options.

Click protocol: global time cuts (calendar periods or interaction quantiles; rows outside the periods are
dropped first), label = rating >= threshold, history = the user's positives before the row among the kept rows
(all parts: a test row's history includes earlier valid and test positives), chronological, the last
`max_history` kept; valid_small = a seeded random fraction of valid, for early stopping.

Ties: CoLLM's pickles count earlier rows of the same second as history, in row order (`history_ties=
"row_order"` reproduces all 51,623 of their `his` columns); the papers' text says "strictly before", which is
`"exclude"` (the default): rows sharing the row's timestamp are not history.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields

import numpy as np
import pandas as pd

from llmrec.data.collm import WARM_DEFINITIONS, warm_flags
from llmrec.data.info import is_implicit
from llmrec.data.registry import dataset_cache_key, load_click_split, load_dataset, resolve, short_hash
from llmrec.data.types import ClickSplit, Dataset, SequenceSplit
from llmrec.data.split_configs import SequenceSplitConfig
from llmrec.errors import LlmrecError
from llmrec.paths import home

SPLIT_VERSION = 1
"""Bump when a split's rows could change for the same options: cached splits are then rebuilt."""
COLLM_ML1M_CUTS = (("2001-06", "2002-03"), ("2002-04", "2002-08"), ("2002-09", "2003-01"))
"""CoLLM / BinLLM ML-1M: train, valid, test months (inclusive, UTC); earlier and later months dropped."""
BINLLM_BOOK_CUTS = (("2017-01", "2017-11"), ("2017-12", "2017-12"))
"""CoLLM / BinLLM Amazon-Book: train January..November 2017; December sorted by time and halved: valid, test."""
DEFAULT_CUTS = {"ml-1m": COLLM_ML1M_CUTS, "collm": COLLM_ML1M_CUTS}
QUANTILE_CUTS = (0.8, 0.9)
HISTORY_TIES = ("exclude", "row_order")
CUT_BY = ("global", "user")
_PERIOD = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?$")


@dataclass
class ClickSplitConfig:
    """How a click split is made (its fields are `click_split`'s keyword arguments)."""

    cuts: tuple | None = None
    """Calendar periods ((start, end) for train, valid, test; 'YYYY-MM' or 'YYYY-MM-DD', inclusive, UTC; rows
    outside dropped; with two periods the second is sorted by time and halved into valid and test), or
    interaction quantiles (q1, q2): first q1 of rows by time train, then valid up to q2, the rest test.
    None: the paper's months for ml-1m / collm, else (0.8, 0.9)."""
    threshold: float = 4.0
    """label = rating >= threshold (ML-1M 4, Amazon-Book 5)."""
    max_history: int | None = 50
    """Keep the last this many history items (None: all)."""
    valid_small_fraction: float = 0.5
    """Share of valid rows sampled (seeded) into valid_small, used for early stopping."""
    seed: int = 2023
    """Seed of the valid_small sample (CoLLM: 2023)."""
    warm_definition: str = "paper"
    """'paper': user and item each have more than 3 train rows; 'not_cold': both occur in train."""
    domain: str = "movie"
    """Noun the prompts use for items ('movie', 'book', ...)."""
    history_ties: str = "exclude"
    """Rows at the same second as the row: 'exclude' (not history) or 'row_order' (earlier rows count, as in
    CoLLM's files)."""
    cut_by: str = "global"
    """'global' (the papers): quantile cuts over all rows by time, so late-arriving users are only in test.
    'user' (ours): the same quantiles within each user's own time-ordered rows, so nearly every test user has
    train rows and warm test rows are the rule (only with quantile cuts)."""

    def __post_init__(self):
        if isinstance(self.cuts, list):
            self.cuts = tuple(tuple(c) if isinstance(c, list) else c for c in self.cuts)
        if self.max_history is not None and self.max_history < 0:
            raise LlmrecError(f"max_history must be >= 0 or None, got {self.max_history}")
        if not 0 < self.valid_small_fraction <= 1:
            raise LlmrecError(f"valid_small_fraction must be in (0, 1], got {self.valid_small_fraction}")
        if self.warm_definition not in WARM_DEFINITIONS:
            raise LlmrecError(f"unknown warm definition {self.warm_definition!r}; expected one of {WARM_DEFINITIONS}")
        if self.history_ties not in HISTORY_TIES:
            raise LlmrecError(f"unknown history_ties {self.history_ties!r}; expected one of {HISTORY_TIES}")
        if self.cut_by not in CUT_BY:
            raise LlmrecError(f"unknown cut_by {self.cut_by!r}; expected one of {CUT_BY}")


def period_bounds(start: str, end: str) -> tuple[int, int]:
    """[first second, last second + 1) of an inclusive period of months or days, UTC unix seconds."""
    bounds = []
    for k, text in enumerate((str(start), str(end))):
        m = _PERIOD.match(text.strip())
        if not m:
            raise LlmrecError(f"cuts: {text!r} is not 'YYYY-MM' or 'YYYY-MM-DD'")
        year, month, day = int(m[1]), int(m[2]), m[3]
        try:
            t = pd.Timestamp(year=year, month=month, day=int(day or 1), tz="UTC")
        except ValueError:
            raise LlmrecError(f"cuts: {text!r} is not a valid date") from None
        if k == 1:  # inclusive end: move to the start of the next month / day
            t = t + (pd.DateOffset(months=1) if day is None else pd.Timedelta(days=1))
        bounds.append(int(t.timestamp()))
    if bounds[0] >= bounds[1]:
        raise LlmrecError(f"cuts: period {start}..{end} is empty")
    return bounds[0], bounds[1]


def resolve_cuts(cuts, name: str):
    """('quantiles', (q1, q2)) or ('periods', [(lo, hi), ...]) from a config value."""
    if cuts is None:
        cuts = DEFAULT_CUTS.get(name, QUANTILE_CUTS)
    if isinstance(cuts, (list, tuple)) and len(cuts) == 2 and all(isinstance(c, (int, float)) for c in cuts):
        q1, q2 = float(cuts[0]), float(cuts[1])
        if not 0 < q1 <= q2 < 1:
            raise LlmrecError(f"cuts: quantiles must satisfy 0 < q1 <= q2 < 1, got {cuts}")
        return "quantiles", (q1, q2)
    if (isinstance(cuts, (list, tuple)) and len(cuts) in (2, 3)
            and all(isinstance(c, (list, tuple)) and len(c) == 2 for c in cuts)):
        periods = [period_bounds(*c) for c in cuts]
        for (_, hi), (lo, _) in zip(periods, periods[1:]):
            if lo < hi:
                raise LlmrecError(f"cuts: periods overlap or are out of order: {cuts}")
        return "periods", periods
    raise LlmrecError(f"cuts: expected (q1, q2) quantiles or 2-3 (start, end) periods, got {cuts!r}")


def assign_parts(timestamps: np.ndarray, cuts, name: str, users: np.ndarray | None = None) -> np.ndarray:
    """Part of each row: 0 train, 1 valid, 2 test, -1 dropped. With `users`, quantile cuts apply within each
    user's rows (ClickSplitConfig.cut_by='user')."""
    n = len(timestamps)
    part = np.full(n, -1, dtype=np.int8)
    kind, spec = resolve_cuts(cuts, name)
    if users is not None:
        if kind != "quantiles":
            raise LlmrecError(f"{name}: cut_by='user' needs quantile cuts such as [0.8, 0.9], not calendar periods")
        order = np.lexsort((np.arange(n), timestamps, users))
        u = users[order]
        starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
        sizes = np.diff(np.r_[starts, n])
        pos = np.arange(n) - np.repeat(starts, sizes)  # rank of the row in its user's time order
        n_u = np.repeat(sizes, sizes)
        part[order] = np.where(pos < np.round(spec[0] * n_u), 0, np.where(pos < np.round(spec[1] * n_u), 1, 2))
        return part
    if kind == "quantiles":
        order = np.argsort(timestamps, kind="stable")
        n1, n2 = int(round(spec[0] * n)), int(round(spec[1] * n))
        part[order[:n1]], part[order[n1:n2]], part[order[n2:]] = 0, 1, 2
        return part
    for k, (lo, hi) in enumerate(spec):
        part[(timestamps >= lo) & (timestamps < hi)] = k
    if len(spec) == 2:  # one held-out period, halved by time: first half valid, second half test
        held = np.flatnonzero(part == 1)
        held = held[np.argsort(timestamps[held], kind="stable")]
        part[held[len(held) // 2:]] = 2
    return part


def _fmt_time(t) -> str:
    return pd.Timestamp(int(t), unit="s", tz="UTC").strftime("%Y-%m-%d")


def history_bounds(user: np.ndarray, timestamp: np.ndarray, positive: np.ndarray, max_history: int | None,
                   ties: str) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by (user, time, row): [start, end) into `item[positive]` of each row's history."""
    n = len(user)
    idx = np.arange(n)
    before = np.cumsum(positive, dtype=np.int64) - positive  # positives before each row, all users
    new_user = np.ones(n, dtype=bool)
    new_user[1:] = user[1:] != user[:-1]
    user_first = np.maximum.accumulate(np.where(new_user, idx, 0))
    if ties == "exclude":  # stop at the first row of the row's (user, timestamp) group
        new_group = new_user.copy()
        new_group[1:] |= timestamp[1:] != timestamp[:-1]
        end = before[np.maximum.accumulate(np.where(new_group, idx, 0))]
    else:
        end = before
    start = before[user_first]
    if max_history is not None:
        start = np.maximum(start, end - max_history)
    return start, end


def _slices(values: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Object array of read-only views values[start:end] (no copies: one array backs all histories)."""
    values.flags.writeable = False  # callers pass a fresh array; shared views must not be edited in place
    out = np.empty(len(start), dtype=object)
    for k, (a, b) in enumerate(zip(start.tolist(), end.tolist())):
        out[k] = values[a:b]
    return out


def click_split(ds: Dataset, *, cuts=None, threshold: float = 4.0, max_history: int | None = 50,
                valid_small_fraction: float = 0.5, seed: int = 2023, warm_definition: str = "paper",
                domain: str = "movie", history_ties: str = "exclude", cut_by: str = "global") -> ClickSplit:
    """The CoLLM / BinLLM click split of a dataset (see `ClickSplitConfig` for each option)."""
    cfg = ClickSplitConfig(cuts=cuts, threshold=threshold, max_history=max_history,
                           valid_small_fraction=valid_small_fraction, seed=seed, warm_definition=warm_definition,
                           domain=domain, history_ties=history_ties, cut_by=cut_by)
    inter = ds.interactions
    if inter.empty:
        raise LlmrecError(f"{ds.name}: no interactions to split")
    ts_all = inter["timestamp"].to_numpy(np.int64)
    part = assign_parts(ts_all, cfg.cuts, ds.name,
                        inter["user_id"].to_numpy(np.int64) if cfg.cut_by == "user" else None)
    rows = np.flatnonzero(part >= 0)
    u = inter["user_id"].to_numpy(np.int64)[rows]
    t = ts_all[rows]
    order = np.lexsort((rows, t, u))  # user, then time, then the source's row order
    rows, u, t = rows[order], u[order], t[order]
    item = inter["item_id"].to_numpy(np.int64)[rows]
    label = (inter["rating"].to_numpy(np.float64)[rows] >= cfg.threshold)
    part = part[rows]
    for k, pname in enumerate(("train", "valid", "test")):
        if not (part == k).any():
            span = f"{_fmt_time(ts_all.min())}..{_fmt_time(ts_all.max())}"
            raise LlmrecError(f"{ds.name}: click split has no {pname} rows with cuts {cfg.cuts or 'default'} "
                              f"(data spans {span})")
    if is_implicit(ds):  # one rating for every row: no negatives to predict
        raise LlmrecError(f"{ds.name}: implicit data (every rating is {inter['rating'].iloc[0]:g}), but click "
                          "prediction needs negatives; use a sequence or holdout method, or data with ratings")
    if not label.any() or label.all():
        which = "no" if not label.any() else "every"
        raise LlmrecError(f"{ds.name}: {which} row has rating >= {cfg.threshold} (ratings "
                          f"{inter['rating'].min():g}..{inter['rating'].max():g}); set data.threshold")
    start, end = history_bounds(u, t, label, cfg.max_history, cfg.history_ties)
    frame = pd.DataFrame({"user_id": u, "item_id": item, "label": label.astype(np.int8), "timestamp": t})
    frame["history"] = _slices(item[label], start, end)
    frames = {pname: frame.loc[part == k].reset_index(drop=True) for k, pname in enumerate(("train", "valid", "test"))}
    frames["valid_small"] = frames["valid"].sample(frac=cfg.valid_small_fraction, random_state=cfg.seed)
    frames["valid_small"] = frames["valid_small"].reset_index(drop=True)
    train = frames["train"]
    for f in frames.values():
        f["warm"] = warm_flags(f, train, cfg.warm_definition).to_numpy()
        f["not_cold"] = warm_flags(f, train, "not_cold").to_numpy()
    kind, spec = resolve_cuts(cfg.cuts, ds.name)
    meta = {"source": ds.name, "protocol": "click", **asdict(cfg), "cuts_resolved": {kind: spec},
            "rows": {p: len(f) for p, f in frames.items()}, "dropped": int(len(inter) - len(rows)), **raw_id_meta(ds)}
    return ClickSplit(name=ds.name, items=ds.items, n_users=ds.n_users, n_items=ds.n_items, domain=cfg.domain,
                      meta=meta, **frames)


def sequence_split(ds: Dataset, *, max_length: int | None = 50, min_interactions: int = 3,
                   positive_threshold: float | None = None) -> SequenceSplit:
    """Leave-one-out: per user in time order (ties: source row order), last item test, second-to-last valid,
    the rest train (its last `max_length`). Users with fewer than `min_interactions` are dropped."""
    cfg = SequenceSplitConfig(max_length=max_length, min_interactions=min_interactions,
                              positive_threshold=positive_threshold)
    inter = ds.interactions
    keep = np.ones(len(inter), dtype=bool)
    if cfg.positive_threshold is not None and not is_implicit(ds):  # implicit data: every row is a positive
        keep = inter["rating"].to_numpy(np.float64) >= cfg.positive_threshold
    rows = np.flatnonzero(keep)
    u = inter["user_id"].to_numpy(np.int64)[rows]
    t = inter["timestamp"].to_numpy(np.int64)[rows]
    order = np.lexsort((rows, t, u))
    u, item = u[order], inter["item_id"].to_numpy(np.int64)[rows][order]
    firsts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]]) if len(u) else np.zeros(0, dtype=np.int64)
    ends = np.r_[firsts[1:], len(u)].astype(np.int64)
    counts = ends - firsts
    ok = counts >= cfg.min_interactions
    if not ok.any():
        raise LlmrecError(f"{ds.name}: no user has {cfg.min_interactions} or more interactions"
                          + (f" with rating >= {cfg.positive_threshold} (sequence.positive_threshold)"
                             if cfg.positive_threshold is not None else ""))
    firsts, ends = firsts[ok], ends[ok]
    train_end = ends - 2
    train_start = firsts if cfg.max_length is None else np.maximum(firsts, train_end - cfg.max_length)
    users = pd.DataFrame({"user_id": u[firsts], "train": _slices(item, train_start, train_end),
                          "valid": item[ends - 2], "test": item[ends - 1]})
    meta = {"source": ds.name, "protocol": "leave-one-out", **asdict(cfg), "users": len(users),
            "dropped_users": int((~ok).sum()), **raw_id_meta(ds)}
    return SequenceSplit(name=ds.name, users=users, items=ds.items, n_users=ds.n_users, n_items=ds.n_items, meta=meta)


def raw_id_meta(ds: Dataset, users=None, items=None) -> dict:
    """The split meta's raw id maps: raw_user_ids[i - 1] / raw_item_ids[j - 1] is the source's id of the split's
    user i / item j, so a saved run takes and shows the dataset's own ids (`llmrec.ids`). `users` / `items`: the
    dataset ids behind a split that renumbers them (holdout). Empty when the dataset has none."""
    raw_u, raw_i = list(ds.raw_user_ids or []), list(ds.raw_item_ids or [])
    if users is not None and raw_u:
        raw_u = [raw_u[int(u) - 1] for u in users]
    if items is not None and raw_i:
        raw_i = [raw_i[int(i) - 1] for i in items]
    return {"raw_user_ids": raw_u, "raw_item_ids": raw_i}


def split_config(cls, options: dict, what: str):
    """`cls(**options)` with unknown option names reported in one line."""
    names = [f.name for f in fields(cls)]
    unknown = [k for k in options if k not in names]
    if unknown:
        raise LlmrecError(f"{what}: unknown option(s) {', '.join(unknown)}; accepted: {', '.join(names)}")
    return cls(**options)


def cached_split(kind: str, name: str, dataset_options: dict, cfg, split_cls, build, *, refresh: bool = False,
                 version: int = SPLIT_VERSION):
    """`build(load_dataset(name, **dataset_options), **asdict(cfg))`, saved (atomically, by `split_cls.save`) under
    home()/splits/ keyed by kind, version, dataset and config, and read back from there on later calls."""
    key = {"kind": kind, "version": version, "dataset": dataset_cache_key(name, **dataset_options),
           "config": asdict(cfg)}
    path = home() / "splits" / f"{key['dataset']['name']}-{kind}-{short_hash(key)}"
    if (path / "split.json").exists() and not refresh:
        try:
            split = split_cls.load(path)
            if "raw_user_ids" in split.meta:  # splits cached before the raw id maps were stored are rebuilt
                return split
        except Exception:  # an unreadable cache is rebuilt, never trusted
            pass
    split = build(load_dataset(name, **dataset_options), **asdict(cfg))
    split.save(path)
    return split


def get_click_split(name: str, *, dataset_options: dict | None = None, refresh: bool = False,
                    **options) -> ClickSplit:
    """`click_split(load_dataset(name, **dataset_options), **options)`, built once and cached under
    home()/splits/. Sources that come already split (collm) are read as they are: options go to their reader."""
    dataset_options = dict(dataset_options or {})
    canonical, source, resolved = resolve(name, dataset_options)
    if source.click is not None:
        return load_click_split(canonical, **resolved, **options)
    cfg = split_config(ClickSplitConfig, options, f"{canonical} click split")
    return cached_split("click", name, dataset_options, cfg, ClickSplit, click_split, refresh=refresh)


def get_sequence_split(name: str, *, dataset_options: dict | None = None, refresh: bool = False,
                       **options) -> SequenceSplit:
    """`sequence_split(load_dataset(name, **dataset_options), **options)`, built once and cached."""
    dataset_options = dict(dataset_options or {})
    cfg = split_config(SequenceSplitConfig, options, f"{name} sequence split")
    return cached_split("sequence", name, dataset_options, cfg, SequenceSplit, sequence_split, refresh=refresh)
