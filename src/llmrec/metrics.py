"""Ranking and click metrics as plain functions on arrays.

AUC follows scikit-learn (ties count one half). UAUC is the unweighted mean of per-user AUCs over users with at
least two rows and both labels (CoLLM / BinLLM). GAUC weights the same per-user AUCs by impressions or by
positives: a different number, named apart.

Top-k ranking, one module for both protocols: `leave_one_out_metrics` (one held-out item per user, from its 1-based
rank: HR@1/5/10, NDCG@5/10, MRR; SASRec, popularity-rank, LC-Rec) and `holdout_metrics` (a held-out set per user,
from the ranked top-k list: Recall@20/40, NDCG@100; Mult-VAE, LightGCN-BPR, CLLM4Rec); docs/architecture.md.

Intervals are percentile bootstraps over users (`user_bootstrap`): a replicate draws as many users as there are, with
replacement, and keeps every row of each drawn user, so rows of one user move together (they are not independent).
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def auc(labels, scores) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape[0]} vs {s.shape[0]}")
    pos = y > 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)  # average ranks: ties count one half
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def per_user_auc(users, labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(user ids, per-user AUC, impressions, positives) for users with >= 2 rows and both labels."""
    u = np.asarray(users).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    order = np.argsort(u, kind="stable")
    u, y, s = u[order], y[order], s[order]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    ends = np.r_[starts[1:], len(u)]
    ids, aucs, imps, poss = [], [], [], []
    for a, b in zip(starts, ends):
        n_pos = int((y[a:b] > 0.5).sum())
        if b - a < 2 or n_pos == 0 or n_pos == b - a:
            continue
        ids.append(u[a]); aucs.append(auc(y[a:b], s[a:b])); imps.append(b - a); poss.append(n_pos)
    return np.asarray(ids), np.asarray(aucs, dtype=np.float64), np.asarray(imps), np.asarray(poss)


def uauc(users, labels, scores) -> float:
    """Unweighted mean of per-user AUC (users with one row or one label class skipped)."""
    _, aucs, _, _ = per_user_auc(users, labels, scores)
    return float(aucs.mean()) if len(aucs) else float("nan")


def gauc(users, labels, scores, weight: str = "impressions") -> float:
    """Per-user AUC averaged with weights: 'impressions' (rows per user) or 'positives'."""
    _, aucs, imps, poss = per_user_auc(users, labels, scores)
    if weight not in ("impressions", "positives"):
        raise ValueError(f"weight must be 'impressions' or 'positives', not {weight!r}")
    w = imps if weight == "impressions" else poss
    return float((aucs * w).sum() / w.sum()) if len(aucs) else float("nan")


def hit_rate(ranks, k: int) -> float:
    """HR@k: share of held-out items ranked within the top k (ranks are 1-based)."""
    r = np.asarray(ranks, dtype=np.float64)
    return float((r <= k).mean()) if len(r) else float("nan")


def ndcg(ranks, k: int) -> float:
    """NDCG@k for one held-out item per user: 1 / log2(rank + 1) inside the top k, else 0."""
    r = np.asarray(ranks, dtype=np.float64)
    if not len(r):
        return float("nan")
    return float(np.where(r <= k, 1.0 / np.log2(r + 1.0), 0.0).mean())


def mrr(ranks, k: int | None = None) -> float:
    """Mean reciprocal rank (0 beyond the top k when k is given)."""
    r = np.asarray(ranks, dtype=np.float64)
    if not len(r):
        return float("nan")
    rr = 1.0 / r
    return float(np.where(r <= k, rr, 0.0).mean() if k else rr.mean())


def recall_at_k(topk, relevant, k: int) -> float:
    """Recall@k for several held-out items per user: |top-k ∩ relevant| / min(k, |relevant|) (Mult-VAE, CLLM4Rec).

    topk: per user, the ranked recommended ids (at least k); relevant: per user, a set of held-out ids.
    Users with no held-out items are skipped (never NaN).
    """
    vals = [len(set(list(t)[:k]) & set(rel)) / min(k, len(rel)) for t, rel in zip(topk, relevant) if len(rel)]
    return float(np.mean(vals)) if vals else float("nan")


def ndcg_at_k_multi(topk, relevant, k: int) -> float:
    """NDCG@k for several held-out items per user (binary relevance; ideal DCG over min(k, |relevant|))."""
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    vals = []
    for t, rel in zip(topk, relevant):
        rel = set(rel)
        if not rel:
            continue
        gains = np.array([1.0 if i in rel else 0.0 for i in list(t)[:k]])
        dcg = float((gains * disc[: len(gains)]).sum())
        vals.append(dcg / float(disc[: min(k, len(rel))].sum()))
    return float(np.mean(vals)) if vals else float("nan")


def rank_of_target(scores, target) -> np.ndarray:
    """1-based rank of each row's target among its scores (ties counted pessimistically: equal scores rank above).

    scores [n_users, n_items] with excluded items already set to -inf; target [n_users] column indices.
    """
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(target)
    target_scores = s[np.arange(len(t)), t][:, None]
    return (s > target_scores).sum(axis=1) + (s == target_scores).sum(axis=1)


def click_metrics(users, labels, scores, prefix: str = "") -> dict[str, float]:
    """AUC, UAUC and impression-weighted GAUC in one dict."""
    return {f"{prefix}auc": auc(labels, scores), f"{prefix}uauc": uauc(users, labels, scores),
            f"{prefix}gauc": gauc(users, labels, scores), f"{prefix}rows": float(len(np.asarray(labels)))}


BOOTSTRAP_SAMPLES = 1000
"""Replicates behind every interval; the percentile bounds move by about 0.001 AUC between seeds at 7k rows."""


def user_bootstrap(users, n_boot: int = BOOTSTRAP_SAMPLES, seed: int = 0):
    """Yield `n_boot` row-index arrays, each the rows of a resample of the users drawn with replacement."""
    u = np.asarray(users).ravel()
    order = np.argsort(u, kind="stable")
    starts = np.flatnonzero(np.r_[True, u[order][1:] != u[order][:-1]]) if len(u) else np.zeros(0, dtype=np.int64)
    sizes = np.diff(np.r_[starts, len(u)])
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        pick = rng.integers(0, len(starts), size=len(starts))
        # rows of the drawn users: each user's block of `order`, repeated as often as it was drawn
        lens = sizes[pick]
        offsets = np.repeat(starts[pick] - np.r_[0, np.cumsum(lens)[:-1]], lens)
        yield order[np.arange(lens.sum()) + offsets]


def percentile_interval(values, level: float = 0.95) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return float("nan"), float("nan")
    lo, hi = np.percentile(v, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def mean_interval(values, n_boot: int = BOOTSTRAP_SAMPLES, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Bootstrap interval of the mean of one value per user (HR@k, NDCG@k, Recall@k of each test user)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if not len(v):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.array([v[rng.integers(0, len(v), size=len(v))].mean() for _ in range(n_boot)])
    return percentile_interval(means, level)


def click_intervals(users, labels, scores, prefix: str = "", n_boot: int = BOOTSTRAP_SAMPLES,
                    seed: int = 0) -> dict[str, float]:
    """95% user-bootstrap intervals of AUC and UAUC: {prefix}auc_lo, {prefix}auc_hi, {prefix}uauc_lo, ..."""
    u = np.asarray(users).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    aucs = [auc(y[rows], s[rows]) for rows in user_bootstrap(u, n_boot, seed)]
    _, per_user, _, _ = per_user_auc(u, y, s)
    out = dict(zip((f"{prefix}auc_lo", f"{prefix}auc_hi"), percentile_interval(aucs)))
    out.update(zip((f"{prefix}uauc_lo", f"{prefix}uauc_hi"), mean_interval(per_user, n_boot, seed)))
    return out


def paired_auc_difference(users, labels, scores_a, scores_b, n_boot: int = BOOTSTRAP_SAMPLES,
                          seed: int = 0) -> dict[str, float]:
    """AUC(a) - AUC(b) on the same rows, with a 95% interval from the same user resamples for both: the way to
    read a 0.01 difference between two methods (their separate intervals overlap far more than the paired one)."""
    u = np.asarray(users).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    a = np.asarray(scores_a, dtype=np.float64).ravel()
    b = np.asarray(scores_b, dtype=np.float64).ravel()
    diffs = [auc(y[r], a[r]) - auc(y[r], b[r]) for r in user_bootstrap(u, n_boot, seed)]
    lo, hi = percentile_interval(diffs)
    return {"diff": auc(y, a) - auc(y, b), "lo": lo, "hi": hi}


def auc_beyond(labels, scores, reference, bins: int = 20, max_values: int = 65) -> tuple[float, int]:
    """What `scores` know that `reference` does not: the AUC of `scores` within groups of rows on which the
    reference agrees (equal values when it takes at most `max_values` distinct values, as the inner products of
    codes of up to 64 bits do; else `bins` equal-count quantile bins), averaged with each group's
    positive-negative pairs as weights. 0.5: `scores` add nothing to the reference's ordering (a reader of the
    reference and nothing more). Returns (that AUC, the rows in groups with both labels)."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    r = np.asarray(reference, dtype=np.float64).ravel()
    values = np.unique(r)
    group = (np.searchsorted(values, r) if len(values) <= max_values else
             np.minimum((rankdata(r, method="ordinal") - 1) * bins // len(r), bins - 1))
    total, weight, rows = 0.0, 0.0, 0
    for g in np.unique(group):
        m = group == g
        pairs = float((y[m] > 0.5).sum() * (y[m] <= 0.5).sum())
        if pairs:
            total += auc(y[m], s[m]) * pairs
            weight += pairs
            rows += int(m.sum())
    return (total / weight if weight else float("nan")), rows


def frame_metrics(frame, scores, intervals: bool = False) -> dict[str, float]:
    """click_metrics of a click frame's scores overall, then on its warm rows (prefix warm_) and the rest (cold_);
    with `intervals`, each AUC and UAUC also gets its 95% user-bootstrap interval (click_intervals)."""
    scores = np.asarray(scores, dtype=np.float64)
    users, labels = frame["user_id"].to_numpy(), frame["label"].to_numpy()
    parts = [("", np.ones(len(users), dtype=bool))]
    if "warm" in frame.columns:
        warm = frame["warm"].to_numpy().astype(bool)
        parts += [("warm_", warm), ("cold_", ~warm)]
    out: dict[str, float] = {}
    for prefix, rows in parts:
        if rows.any():
            out.update(click_metrics(users[rows], labels[rows], scores[rows], prefix=prefix))
            if intervals:
                out.update(click_intervals(users[rows], labels[rows], scores[rows], prefix=prefix))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Top-k ranking of held-out items

def per_user_leave_one_out_metrics(ranks) -> dict[str, np.ndarray]:
    """Each user's HR@1/5/10, NDCG@5/10 and reciprocal rank from the 1-based rank of their one target (inf: never
    ranked); `leave_one_out_metrics` reports their means."""
    r = np.asarray(ranks, dtype=np.float64)
    out = {f"hr@{k}": (r <= k).astype(np.float64) for k in (1, 5, 10)}
    out.update({f"ndcg@{k}": np.where(r <= k, 1.0 / np.log2(r + 1.0), 0.0) for k in (5, 10)})
    out["mrr"] = 1.0 / r
    return out


def leave_one_out_metrics(ranks, intervals: bool = False, prefix: str = "") -> dict[str, float]:
    """HR@1/5/10, NDCG@5/10 and MRR of 1-based target ranks, one per user: the sequence family's metrics
    (sasrec-rank, popularity-rank, LC-Rec). A rank of inf is a target never ranked (beyond LC-Rec's beam): a
    miss at every cut-off, reciprocal rank 0 (LC-Rec's MRR is thus cut at its beam width).

    intervals: also each metric's 95% bootstrap interval over users (`mean_interval` of the per-user values), as
    {prefix}hr@10_lo / {prefix}hr@10_hi. prefix: put before every key (e.g. "paper_")."""
    r = np.asarray(ranks, dtype=np.float64)
    per_user = per_user_leave_one_out_metrics(r)
    out = {f"{prefix}{name}": float(values.mean()) if len(r) else float("nan") for name, values in per_user.items()}
    out[f"{prefix}users"] = float(len(r))
    if intervals:
        for name, values in per_user.items():
            out[f"{prefix}{name}_lo"], out[f"{prefix}{name}_hi"] = mean_interval(values)
    return out


METRIC_KS = (("recall", 20), ("recall", 40), ("ndcg", 100))
"""The held-out-set metrics (CLLM4Rec's): Recall@20, Recall@40, NDCG@100."""
SELECTION = "recall@20+recall@40+ndcg@100"
"""Their sum: the validation number that selects a holdout model's best epoch."""


def per_user_holdout_metrics(topk, relevant) -> dict[str, np.ndarray]:
    """Recall@20, Recall@40, NDCG@100 of each user with held-out items (users without any are left out)."""
    pairs = [(list(map(int, t)), set(map(int, r))) for t, r in zip(topk, relevant) if len(r)]
    out = {}
    for kind, k in METRIC_KS:
        fn = recall_at_k if kind == "recall" else ndcg_at_k_multi
        out[f"{kind}@{k}"] = np.array([fn([t], [r], k) for t, r in pairs], dtype=np.float64)
    return out


def holdout_metrics(topk, relevant, intervals: bool = False) -> dict[str, float]:
    """Recall@20, Recall@40, NDCG@100 (and their sum, SELECTION) of ranked lists against held-out sets; users
    without held-out items are skipped (`users` counts the others). `intervals`: also each metric's 95% bootstrap
    interval over users, as `<metric>_lo` and `<metric>_hi`."""
    topk = [list(map(int, t)) for t in topk]
    relevant = [set(map(int, r)) for r in relevant]
    out = {}
    for kind, k in METRIC_KS:
        fn = recall_at_k if kind == "recall" else ndcg_at_k_multi
        out[f"{kind}@{k}"] = fn(topk, relevant, k)
    out[SELECTION] = sum(out[f"{kind}@{k}"] for kind, k in METRIC_KS)
    out["users"] = float(sum(1 for r in relevant if r))
    if intervals:
        for name, values in per_user_holdout_metrics(topk, relevant).items():
            out[f"{name}_lo"], out[f"{name}_hi"] = mean_interval(values)
    return out
