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
from llmrec.errors import LlmrecError
from llmrec.paths import atomic_file
from llmrec.report import markdown_table
from llmrec.methods import registry
from llmrec.runs import Run, RunLog


def make_config(method: str, path: str | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """The config of a registered method or variant (llmrec.methods.registry): defaults <- YAML file <-
    overrides, every value type- and range-checked, the method's own sections included, before anything is
    written. A variant's overrides come before the user's."""
    entry = registry.get(method)  # unknown names fail here, with the list of known ones
    runs = registry.get(entry.runs_as)  # a variant runs its base method
    cfg = load_config(path, list(entry.overrides) + list(overrides or []), base={"method": runs.name})
    if cfg.method != runs.name:  # the command line names the method, over a config file's `method:`
        cfg = dataclasses.replace(cfg, method=runs.name)
    if runs.prepare is not None:
        cfg = runs.prepare(cfg)
    from llmrec.tracking import resolve

    resolve(cfg.report_to)  # parsing cannot tell whether the trackers named are installed: an error now
    return cfg


def load_split(cfg: ExperimentConfig):
    """The split a config names, of its method's family (built once, then cached under home())."""
    d = cfg.data
    dataset_options = dict(d.options)
    if d.path:  # the source's own file option: path (csv, collm, lcrec), inter (recbole), reviews (amazon)
        from llmrec.data.registry import file_option, resolve
        dataset_options[file_option(resolve(d.dataset, {})[1])] = d.path
    kind = registry.family(cfg.method)
    if kind == "sequence":
        from llmrec.data.splits import get_sequence_split
        return get_sequence_split(d.dataset, dataset_options=dataset_options,
                                  **dataclasses.asdict(cfg.sequence))
    if kind == "holdout":
        from llmrec.data.holdout import get_holdout_split
        return get_holdout_split(d.dataset, dataset_options=dataset_options,
                                 **dataclasses.asdict(cfg.holdout), seed=cfg.seed)
    if d.dataset in ("collm", "collm-ml1m"):
        return get_click_split("collm", dataset_options=dataset_options, max_history=d.max_history,
                               warm_definition=d.warm_definition, domain=d.domain)
    return get_click_split(d.dataset, dataset_options=dataset_options, cuts=d.cuts, threshold=d.threshold,
                           max_history=d.max_history, valid_small_fraction=d.valid_small_fraction, seed=cfg.seed,
                           warm_definition=d.warm_definition, domain=d.domain, cut_by=d.cut_by)


LORA_METHODS = ("tallrec", "binllm", "collm", "cllm4rec")
"""LLM methods that train LoRA adapters (LC-Rec too, unless `lcrec.finetune=full`)."""


def check_sharding(cfg: ExperimentConfig) -> None:
    """FSDP (`llm.fsdp` or a launch with configs/accelerate/fsdp.yaml) shards LC-Rec's full fine-tuning only: the
    LoRA methods fit one GPU at 7B and save their adapters through peft from whole weights, so they are refused;
    the collaborative models never enter the LLM loop and run as they would."""
    from llmrec.llm.sharding import requested

    lora = cfg.method in LORA_METHODS or (cfg.method == "lcrec" and cfg.lcrec.finetune != "full")
    if requested(cfg.llm.fsdp) and lora:
        what = f"lcrec.finetune={cfg.lcrec.finetune}" if cfg.method == "lcrec" else f"method {cfg.method}"
        raise LlmrecError(f"llm.fsdp: FSDP sharding trains LC-Rec's full fine-tuning only (lcrec.finetune=full), "
                          f"not {what}; LoRA at 7B fits one GPU per process: launch with "
                          "configs/accelerate/ddp.yaml")


def train(cfg: ExperimentConfig, out: str | Path, split=None) -> dict:
    """Train and test `cfg.method`; everything lands in the run directory `out` (resumed if unfinished; a
    finished run continues when only budget fields changed, llmrec.runs.BUDGET_FIELDS). A new run's split is built
    before the directory is made, so bad data leaves nothing behind."""
    from llmrec import tracking

    out = Path(out)
    tracking.resolve(cfg.report_to)  # before anything is written
    check_sharding(cfg)
    if not (out / "config.yaml").exists() and split is None:
        split = load_split(cfg)
    run = Run.create_or_resume(out, cfg)
    if run.finished:
        run.log("already finished; metrics kept")
        return run.metrics
    state = run.state()
    if run.has("split/split.json"):
        split = registry.get(cfg.method).split_class().load(run.file("split"))
    else:
        split = split if split is not None else load_split(cfg)
        if run.main:  # the run keeps its data: inference needs no re-split, never a different one
            split.save(run.file("split"))
    if state:  # the method's own checkpoints take it from here
        where = ", ".join(run.progress()) or ", ".join(state[:6]) + (", ..." if len(state) > 6 else "")
        message = f"resumed from {run.path} at {where}"
        run.log(f"{message} ({cfg.method} on {split.name})")
        print(message, flush=True)
    else:
        run.log(f"start {cfg.method} on {split.name}")
    started = time.perf_counter()
    tracker = tracking.start(cfg.report_to, run.file("tracking"), run_name=run.path.name,
                             config=dataclasses.asdict(cfg)).with_backend(RunLog(run))  # evaluations in log.txt
    try:
        metrics = registry.get(cfg.method).train(cfg, split, run, tracker=tracker)
        tracker.scope("test").log(metrics.get("test", {}), step=0)
    finally:
        tracker.finish()
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    metrics["method"] = cfg.method
    metrics["dataset"] = split.name
    run.finish(metrics)
    run.log(f"end: {headline(metrics)} ({metrics['seconds']} s)")
    return metrics


HEADLINE = ("auc", "ndcg@10", "recall@20", "hr@10")
"""The metric a run's log ends with: the first its test metrics hold (click, sequence, holdout families)."""


def headline(metrics: dict) -> str:
    """'test auc 0.7123': the family's headline test metric of a run's metrics."""
    test = metrics.get("test", {})
    key = next((k for k in HEADLINE if k in test), None)
    return f"test {key} {test[key]:.4f}" if key is not None else "no test metric"


def evaluate(run_dir: str | Path, parts: list[str] = ("test",)) -> dict:
    """Score the given split parts with a saved run."""
    from llmrec.recommender import Recommender

    from llmrec.runs import open_run

    method = open_run(run_dir).config.method
    valid = registry.get(method).parts
    parts = [p.strip() for p in parts if p.strip()]
    bad = [p for p in parts if p not in valid]
    if bad or not parts:
        got = f"unknown part {bad[0]!r}" if bad else "no part given"
        raise LlmrecError(f"--parts: {got}; a {method} run has {', '.join(valid)}")
    rec = Recommender.from_pretrained(run_dir)
    return {part: rec.evaluate(part) for part in parts}


def format_metrics(method: str | None, metrics: dict) -> str:
    """A one-row markdown table of a run's test metrics (overall, warm, cold)."""
    return markdown_table([{"method": method or metrics.get("method", ""), **_row(metrics.get("test", metrics))}])


def format_parts(by_part: dict[str, dict]) -> str:
    """One row per split part, for `evaluate`'s {part: metrics}."""
    return markdown_table([{"part": part, **_row(m)} for part, m in by_part.items()])


def _row(m: dict) -> dict:
    """The table columns of one metrics dict: AUC family for click runs, else the ranking metrics it holds."""
    if "auc" in m:
        return {"AUC": _interval(m, "auc"), "UAUC": _interval(m, "uauc"), "warm AUC": _interval(m, "warm_auc"),
                "cold AUC": _interval(m, "cold_auc"), "rows": int(m["rows"]) if m.get("rows") else None}
    names = {"hr": "HR", "ndcg": "NDCG", "recall": "Recall"}
    row = {f"{names.get(k.split('@')[0], k.split('@')[0])}@{k.split('@')[1]}":
           f"{v:.4f} ({m[k + '_lo']:.4f}-{m[k + '_hi']:.4f})" if k + "_lo" in m else v  # with its 95% interval
           for k, v in m.items() if "@" in k and "+" not in k and not k.endswith(("_lo", "_hi"))}
    if m.get("users"):
        row["users"] = int(m["users"])
    return row


def _interval(m: dict, key: str):
    """'0.7243 [0.712, 0.737]' when the metrics hold a 95% interval for `key`, else the bare value."""
    value, lo, hi = m.get(key), m.get(f"{key}_lo"), m.get(f"{key}_hi")
    if value is None or lo is None or hi is None or value != value:  # value != value: NaN
        return value
    return f"{value:.4f} [{lo:.3f}, {hi:.3f}]"


def benchmark(methods: list[str], config: str | None, overrides: list[str], out: Path) -> tuple[str, dict]:
    """Run several methods (or variants) of one family on one dataset, each its own resumable run under `out`,
    and write table.md, results.json and PNG figures: warm/cold AUC bars and, when BinLLM runs with both code
    forms are present, binary vs dot-decimal (AUC and prompt tokens); for ranking families, metric bars.
    Returns (the markdown table, {name: metrics})."""
    from llmrec.report import bar_chart

    configs = {m: make_config(m, config, overrides) for m in methods}
    kinds = {registry.family(c.method) for c in configs.values()}
    if len(kinds) > 1:
        raise LlmrecError(f"benchmark: {', '.join(methods)} mix method families ({', '.join(sorted(kinds))}); "
                          "they use different splits and metrics, so benchmark each family on its own")
    if "tallrec" in configs:  # one text-only tuning serves as stage 1 of every two-step method, as in the papers
        for name, cfg in configs.items():
            if _two_step(cfg) and cfg.stage1_from is None:
                configs[name] = dataclasses.replace(cfg, stage1_from=str(out / "tallrec"))
    rows, results = [], {}
    order = sorted(configs, key=lambda name: name != "tallrec")  # stage 1 first; the table keeps the given order
    for name in order:
        print(f"== {name}", flush=True)
        results[name] = train(configs[name], out / name)
    results = {name: results[name] for name in configs}
    for name, metrics in results.items():
        rows.append({"method": name, **_row(metrics.get("test", {})),
                     "prompt tokens": metrics.get("test", {}).get("prompt_tokens_per_sample"),
                     "minutes": f"{metrics.get('seconds', 0) / 60:.1f}"})
    table = markdown_table(rows)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_file(out / "table.md") as tmp:
        tmp.write_text(table + "\n")
    with atomic_file(out / "results.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2, default=str))
    tests = {name: r.get("test", {}) for name, r in results.items()}
    if kinds == {"click"}:
        bar_chart(out / "warm_cold_auc.png", list(tests),
                  {part: [t.get(key) for t in tests.values()]
                   for part, key in (("all", "auc"), ("warm", "warm_auc"), ("cold", "cold_auc"))},
                  "test AUC", "AUC by method: all, warm and cold rows", ylim=(0.4, 0.85))
        _code_forms_figure(configs, tests, out / "binary_vs_dot_decimal.png")
    else:
        keys = [k for k in dict.fromkeys(k for t in tests.values() for k in t)
                if "@" in k and "+" not in k and not k.endswith(("_lo", "_hi"))
                and not k.startswith("paper_")]  # LC-Rec's paper view: in the table, not the bars
        bar_chart(out / "ranking_metrics.png", list(tests), {k: [t.get(k) for t in tests.values()] for k in keys},
                  "test metric", f"{kinds.pop()} ranking metrics by method")
    return table, results


def _two_step(cfg: ExperimentConfig) -> bool:
    """Whether the method starts from a TALLRec stage 1 (BinLLM two-step, CoLLM)."""
    shares = registry.get(cfg.method).starts_from_tallrec
    return shares is not None and shares(cfg)


def _code_forms_figure(configs: dict, tests: dict, path: Path) -> None:
    """BinLLM with binary vs dot-decimal codes: test AUC and prompt tokens per sample, side by side."""
    from llmrec.report import panel_bars

    forms = {c.binllm.code_format: name for name, c in configs.items()
             if c.method == "binllm" and c.binllm.prompt != "text"}
    if len(forms) < 2:
        return
    labels = sorted(forms)
    panel_bars(path, labels, {"test AUC": [tests[forms[f]].get("auc") for f in labels],
                              "prompt tokens per sample": [tests[forms[f]].get("prompt_tokens_per_sample")
                                                           for f in labels]},
               "BinLLM: binary vs dot-decimal codes")
