"""Ranking and click metrics as plain functions on arrays.

AUC follows scikit-learn (ties count one half). UAUC is the unweighted mean of per-user AUCs over users with at
least two rows and both labels (CoLLM / BinLLM). GAUC weights the same per-user AUCs by impressions or by
positives: a different number, named apart. Top-k metrics take the 1-based rank of each held-out item.
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


def frame_metrics(frame, scores) -> dict[str, float]:
    """click_metrics of a click frame's scores overall, then on its warm rows (prefix warm_) and the rest (cold_)."""
    scores = np.asarray(scores, dtype=np.float64)
    users, labels = frame["user_id"].to_numpy(), frame["label"].to_numpy()
    out = click_metrics(users, labels, scores)
    if "warm" in frame.columns:
        warm = frame["warm"].to_numpy().astype(bool)
        for prefix, rows in (("warm_", warm), ("cold_", ~warm)):
            if rows.any():
                out.update(click_metrics(users[rows], labels[rows], scores[rows], prefix=prefix))
    return out
