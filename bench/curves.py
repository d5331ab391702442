"""Learning curves: a validation metric against training samples and CPU-minutes, for several runs on one figure.

    python -m bench.curves OUT.png RUN[=LABEL] ... [--metric auc] [--stage stage2] [--line "BinMF=0.7243"] [--logx]

A RUN is a run directory or a `log.jsonl`. From a run directory the points are its `metrics.json["curve"]` when it
has one (ranking methods: CLLM4Rec, Mult-VAE, LC-Rec), else its `<stage>_train/checkpoint/log.jsonl`, written by
llmrec.llm.train.fit at every evaluation (click methods: step, samples, train_seconds and the metrics). `--stage` picks the stage folder
(default: the last one that has a log); `--line` draws a horizontal reference (a baseline's valid metric). Writes
OUT.png and prints a markdown table of every point, so the README can carry both.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from llmrec.report import markdown_table, plt, save_png


def read_log(source: str, stage: str | None = None) -> list[dict]:
    path = Path(source)
    metrics = path / "metrics.json"
    if path.is_dir() and stage is None and metrics.is_file() and "curve" in json.loads(metrics.read_text()):
        return json.loads(metrics.read_text())["curve"]
    if path.is_dir():
        logs = sorted(path.glob(f"{stage or '*'}_train/checkpoint/log.jsonl"))
        if not logs:
            raise SystemExit(f"{path}: no {stage or '<stage>'}_train/checkpoint/log.jsonl (has the run evaluated yet?)")
        path = logs[-1]
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--metric", default="auc")
    ap.add_argument("--stage", default=None)
    ap.add_argument("--line", action="append", default=[], help="LABEL=VALUE reference line")
    ap.add_argument("--logx", action="store_true", help="log-scaled x axes (runs whose budgets differ by 100x)")
    args = ap.parse_args(argv)
    fig, (by_samples, by_minutes) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    rows = []
    for spec in args.runs:
        source, _, label = spec.partition("=")
        log = read_log(source, args.stage)
        label = label or Path(source).name
        xs = [r["samples"] for r in log]
        mins = [r["train_seconds"] / 60 for r in log]
        ys = [r[args.metric] for r in log]
        by_samples.plot(xs, ys, marker="o", label=label)
        by_minutes.plot(mins, ys, marker="o", label=label)
        rows += [{"run": label, "step": r.get("step", r.get("epoch")), "samples": r["samples"], "minutes": f"{m:.1f}",
                  args.metric: y} for r, m, y in zip(log, mins, ys)]
    for spec in args.line:
        label, _, value = spec.partition("=")
        for ax in (by_samples, by_minutes):
            ax.axhline(float(value), linestyle="--", color="grey")
            ax.annotate(label, (0, float(value)), xycoords=("axes fraction", "data"), fontsize=8,
                        va="bottom")
    by_samples.set_xlabel("training samples")
    by_minutes.set_xlabel("training CPU-minutes (wall, evaluation excluded)")
    by_samples.set_ylabel(f"valid {args.metric}")
    by_samples.legend(fontsize=8)
    for ax in (by_samples, by_minutes):
        ax.grid(alpha=0.3)
        if args.logx:
            ax.set_xscale("symlog", linthresh=1.0)
            ax.set_xlim(left=0)
    save_png(fig, args.out)
    table = markdown_table(rows)
    print(table)
    return table


if __name__ == "__main__":
    main()
