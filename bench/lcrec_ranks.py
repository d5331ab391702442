"""An LC-Rec run's test HR@k and NDCG@k against popularity's, user by user: each metric's two means, their
difference and its 95% interval over users.

    python -m bench.lcrec_ranks RUN

The run's ranks are its own test's, read from `test_ranks.csv` (a run from before that file existed is ranked
again: the test's beam search once more). Popularity ranks the same users' test items among the items they have
not seen (history = train + valid, ties pessimistic, as `popularity-rank`), under the run's seen-item rule. Both
rankings hit mostly the same popular items, so the paired interval is narrower than the two separate ones.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.metrics import mean_interval, per_user_leave_one_out_metrics
from llmrec.report import markdown_table

METRICS = ("hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10")


def per_user_ranks(run_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """(the run's test rank, popularity's test rank) of every user the run tests, in one order."""
    from llmrec.collab.ranking import eval_sequences, popularity_ranks
    from llmrec.methods.lcrec.recipe import TEST_RANKS_FILE, eval_user_rows, rank_users, seqrec_eval_task
    from llmrec.recommender import Recommender

    rec = Recommender.from_pretrained(run_dir)
    cfg, split = rec.cfg, rec.split
    rows = eval_user_rows(cfg, rec.seed, len(split.users), "test")
    pop = popularity_ranks(split, "test", exclude_history=cfg.exclude_seen, rows=rows)
    path = Path(run_dir) / TEST_RANKS_FILE
    if path.is_file():
        saved = pd.read_csv(path)
        targets, ranks = saved["target"].to_numpy(), saved["rank"].to_numpy(dtype=np.float64)
    else:
        task = seqrec_eval_task(rec.model, rec.tok, split, rec.index, rec.trie, cfg, rows, "test")
        targets, ranks = np.asarray(task.targets), rank_users(task, cfg.eval_batch_size)[:, 0]
    if not np.array_equal(targets, eval_sequences(split, "test", rows)[1]):
        raise SystemExit(f"{path}: its targets are not the test items of the run's test users")
    return ranks, pop.astype(np.float64)


def compare(run_dir: str) -> list[dict]:
    """One row per metric: the run's and popularity's means, run - popularity and its interval, the users."""
    run, pop = (per_user_leave_one_out_metrics(r) for r in per_user_ranks(run_dir))
    rows = []
    for name in METRICS:
        diff = run[name] - pop[name]
        lo, hi = mean_interval(diff)
        rows.append({"metric": name, "run": round(float(run[name].mean()), 4),
                     "popularity": round(float(pop[name].mean()), 4),
                     "run - popularity": f"{diff.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]", "users": len(diff)})
    return rows


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    args = ap.parse_args(argv)
    table = markdown_table(compare(args.run))
    print(table)
    return table


if __name__ == "__main__":
    main()
