"""End-to-end recipes behind `llmrec train / evaluate / benchmark`: config -> split -> method -> run directory.

    cfg = make_config("binllm", "configs/binllm-ml100k.yaml", ["llm.backbone=tiny"])
    metrics = train(cfg, "runs/binllm")        # resumable: the same call continues an interrupted run
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from llmrec.config import ExperimentConfig, load_config
from llmrec.data.splits import get_click_split
from llmrec.data.types import ClickSplit
from llmrec.errors import LlmrecError
from llmrec.report import markdown_table
from llmrec.runs import Run

COLLAB_METHODS = ("mf", "lightgcn", "sasrec", "din")
LLM_METHODS = ("icl", "tallrec", "binllm", "collm")
METHODS = COLLAB_METHODS + ("binmf",) + LLM_METHODS


def make_config(method: str, path: str | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    if method not in METHODS:
        raise LlmrecError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    cfg = load_config(path, list(overrides or []), base={"method": method})
    if cfg.method != method:  # the command line names the method; a config file's `method:` must agree
        cfg = dataclasses.replace(cfg, method=method)
    return cfg


def load_split(cfg: ExperimentConfig) -> ClickSplit:
    """The click split a config names (cached after the first build)."""
    d = cfg.data
    dataset_options = dict(d.options)
    if d.path:
        dataset_options["path"] = d.path
    if d.dataset in ("collm", "collm-ml1m"):
        return get_click_split("collm", dataset_options=dataset_options, max_history=d.max_history,
                               warm_definition=d.warm_definition, domain=d.domain)
    cuts = d.cuts
    return get_click_split(d.dataset, dataset_options=dataset_options, cuts=cuts, threshold=d.threshold,
                           max_history=d.max_history, valid_small_fraction=d.valid_small_fraction, seed=cfg.seed,
                           warm_definition=d.warm_definition, domain=d.domain)


def _method_module(method: str):
    if method in COLLAB_METHODS or method == "binmf":
        from llmrec.methods import collab_recipe as module
    elif method in ("icl", "tallrec"):
        from llmrec.methods.tallrec import recipe as module
    elif method == "binllm":
        from llmrec.methods.binllm import recipe as module
    elif method == "collm":
        from llmrec.methods.collm import recipe as module
    else:
        raise LlmrecError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    return module


def train(cfg: ExperimentConfig, out: str | Path, split: ClickSplit | None = None) -> dict:
    """Train and test `cfg.method`; everything lands in the run directory `out` (resumed if unfinished)."""
    run = Run.create_or_resume(out, cfg)
    if run.finished:
        run.log("already finished; metrics kept")
        return run.metrics
    if run.has("split/split.json"):
        split = ClickSplit.load(run.file("split"))
    else:
        split = split if split is not None else load_split(cfg)
        split.save(run.file("split"))  # the run keeps its data: inference needs no re-split, never a different one
    started = time.perf_counter()
    run.log(f"train {cfg.method} on {split.name}")
    metrics = _method_module(cfg.method).train(cfg, split, run)
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    metrics["method"] = cfg.method
    metrics["dataset"] = split.name
    run.finish(metrics)
    return metrics


def evaluate(run_dir: str | Path, parts: list[str] = ("test",)) -> dict:
    """Score the given split parts with a saved run."""
    from llmrec.recommender import Recommender

    rec = Recommender.from_pretrained(run_dir)
    return {part: rec.evaluate(part) for part in parts}


def format_metrics(method: str | None, metrics: dict) -> str:
    """A one-row markdown table of a run's test metrics (overall, warm, cold)."""
    return markdown_table([{"method": method or metrics.get("method", ""), **_row(metrics.get("test", metrics))}])


def format_parts(by_part: dict[str, dict]) -> str:
    """One row per split part, for `evaluate`'s {part: metrics}."""
    return markdown_table([{"part": part, **_row(m)} for part, m in by_part.items()])


def _row(m: dict) -> dict:
    return {"AUC": m.get("auc"), "UAUC": m.get("uauc"), "warm AUC": m.get("warm_auc"),
            "cold AUC": m.get("cold_auc"), "rows": int(m["rows"]) if m.get("rows") else None}


def benchmark(methods: list[str], config: str | None, overrides: list[str], out: Path) -> str:
    """Run several methods on one dataset (each its own resumable run) and write table.md + figures."""
    from llmrec.report import bar_chart

    rows, results = [], {}
    for method in methods:
        cfg = make_config(method, config, overrides)
        metrics = train(cfg, out / method)
        results[method] = metrics
        rows.append({"method": method, **_row(metrics.get("test", {})),
                     "prompt tokens": metrics.get("prompt_tokens_per_sample"),
                     "minutes": round(metrics.get("seconds", 0) / 60, 1)})
    table = markdown_table(rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table + "\n")
    bar_chart(out / "warm_cold_auc.png", list(results),
              {part: [results[m].get("test", {}).get(key) for m in results]
               for part, key in (("all", "auc"), ("warm", "warm_auc"), ("cold", "cold_auc"))},
              "test AUC", "AUC by method: all, warm and cold rows", ylim=(0.4, 0.85))
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    return table
