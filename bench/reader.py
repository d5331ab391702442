"""How much of a BinLLM or CoLLM run's ranking is its own collaborative model's.

    python -m bench.reader RUN [RUN ...] [--out reader.md]

For each finished run (or one scored by `bench.score_checkpoint`): its saved per-row test scores
(`test_scores.parquet`) against the scores of the collaborative model it reads (BinLLM: its encoder, whose code
inner product takes a few dozen values; CoLLM: its collaborative model, tuned when `collm.tune_collab`) on the same
rows. Reports both AUCs and their paired difference (95% user-bootstrap interval), the Spearman correlation, the
share of the LLM's score variance that an increasing function of the reference explains (isotonic R^2), and
`llmrec.metrics.auc_beyond`: the LLM's AUC among rows the reference scores alike (0.5: it adds nothing).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def reference_scores(run, split, test: pd.DataFrame) -> np.ndarray:
    from llmrec.collab import trainer
    from llmrec.methods.classic import recipe as classic

    method = run.config.method
    if method == "binllm":
        model = classic.load_model(run, split, "encoder")
    elif method == "collm":
        from llmrec.methods.collm.recipe import TUNED_COLLAB

        model = classic.load_model(run, split, "collab")
        if run.has(TUNED_COLLAB):
            model.load_state_dict(run.load_tensors(TUNED_COLLAB))
    else:
        raise SystemExit(f"{run.path}: a {method} run; this compares BinLLM and CoLLM runs with their "
                         "collaborative model")
    return trainer.predict(model, test)


def compare(run_dir: Path) -> list:
    from scipy.stats import spearmanr
    from sklearn.isotonic import IsotonicRegression

    from llmrec.data.types import ClickSplit
    from llmrec.methods.click import TEST_SCORES, subset
    from llmrec.metrics import auc, auc_beyond, paired_auc_difference
    from llmrec.runs import Run

    run = Run(run_dir)
    if not run.has(TEST_SCORES):
        raise SystemExit(f"{run_dir}: no {TEST_SCORES} (finish the run, or `python -m bench.score_checkpoint`)")
    split = ClickSplit.load(run.file("split"))
    saved = pd.read_parquet(run.file(TEST_SCORES))
    test = subset(split.test, run.config.eval.test_rows, run.config.seed)  # the rows the run scored, in order
    if len(test) != len(saved) or not (test["user_id"].to_numpy() == saved["user_id"].to_numpy()).all():
        raise SystemExit(f"{run_dir}: {TEST_SCORES} does not hold the run's test rows")
    ref = reference_scores(run, split, test)
    y, llm, users = saved["label"].to_numpy(), saved["score"].to_numpy(), saved["user_id"].to_numpy()
    d = paired_auc_difference(users, y, llm, ref)
    fitted = IsotonicRegression(out_of_bounds="clip").fit(ref, llm).predict(ref)
    r2 = 1 - np.var(llm - fitted) / np.var(llm)
    beyond, rows = auc_beyond(y, llm, ref)
    return [run_dir.name, len(saved), f"{auc(y, llm):.4f}", f"{auc(y, ref):.4f}",
            f"{d['diff']:+.4f} [{d['lo']:+.3f}, {d['hi']:+.3f}]", f"{spearmanr(llm, ref).correlation:.3f}",
            f"{r2:.3f}", f"{beyond:.3f} ({rows:,} rows)"]


HEADER = ["run", "test rows", "LLM AUC", "its collaborative model's AUC", "LLM - model [95%]", "Spearman",
          "isotonic R^2", "LLM AUC within groups the model scores alike"]


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(prog="python -m bench.reader", description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, help="also write the markdown table here")
    args = ap.parse_args(argv)
    from bench.common import table

    text = "\n".join(table(HEADER, [compare(r) for r in args.runs])) + "\n"
    print(text, end="")
    if args.out:
        from llmrec.paths import atomic_file

        with atomic_file(args.out) as tmp:
            tmp.write_text(text)
    return text


if __name__ == "__main__":
    main()
