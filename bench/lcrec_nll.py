"""An LC-Rec run's next-item likelihood against popularity's, user by user: the mean negative log-likelihood (nats)
of each user's valid or test item under the run (teacher-forced, normalised as its beam search normalises) and
under the training counts' popularity, their difference and its 95% interval over users.

    python -m bench.lcrec_nll RUN [--part test]

Popularity is P(item) = (count + 1) / sum(count + 1) over the catalogue, what `lcrec.item_prior=popularity` starts
from, so a run with the prior that ends below 0 has learnt something popularity does not know. One forward a user
and no search (ml-100k's 943 test users: 9 minutes, where the test's beam search took 27, both beside two other
jobs), and a continuous measure, so the paired interval reads differences that HR@10's separate intervals cannot.
"""
from __future__ import annotations

import argparse

import numpy as np

from llmrec.metrics import mean_interval
from llmrec.report import markdown_table


def per_user_nll(run_dir: str, part: str = "test") -> tuple[np.ndarray, np.ndarray, int]:
    """(the run's NLL, popularity's NLL, catalogue size) for every user the run evaluates on `part`."""
    from llmrec.llm.train import predict_rows
    from llmrec.methods.lcrec.recipe import eval_user_rows, seqrec_eval_task
    from llmrec.methods.lcrec.tasks import NextItemNLLTask
    from llmrec.recommender import Recommender

    rec = Recommender.from_pretrained(run_dir)
    cfg = rec.cfg
    rows = eval_user_rows(cfg, rec.seed, len(rec.split.users), part)
    search = seqrec_eval_task(rec.model, rec.tok, rec.split, rec.index, rec.trie, cfg, rows, part)
    task = NextItemNLLTask(rec.model, search.prompts, search.targets, rec.trie, rec.token_table,
                           pad_token_id=rec.tok.pad_token_id, eos_token_id=search.eos_token_id,
                           normalize=cfg.item_loss)
    nll = predict_rows(task, task.n_rows, batch_size=cfg.eval_batch_size)
    counts = np.asarray(rec.users.counts, dtype=np.float64)
    p = (counts + 1.0) / (counts[1:] + 1.0).sum()
    return nll, -np.log(p[np.asarray(search.targets)]), len(counts) - 1


def compare(run_dir: str, part: str = "test") -> list[dict]:
    nll, pop, n_items = per_user_nll(run_dir, part)
    lo, hi = mean_interval(nll - pop)
    return [{"run": run_dir, "run NLL": round(float(nll.mean()), 4), "popularity NLL": round(float(pop.mean()), 4),
             "uniform": round(float(np.log(n_items)), 4),
             "run - popularity": f"{(nll - pop).mean():+.4f} [{lo:+.4f}, {hi:+.4f}]", "users": len(nll)}]


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--part", default="test", choices=("valid", "test"))
    args = ap.parse_args(argv)
    table = markdown_table(compare(args.run, args.part))
    print(table)
    return table


if __name__ == "__main__":
    main()
