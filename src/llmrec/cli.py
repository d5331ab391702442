"""The `llmrec` command: one subcommand per user task. Thin: parse, call a recipe, print."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from llmrec import __version__
from llmrec.errors import LlmrecError
from llmrec.methods import registry as methods


def _methods_epilog() -> str:
    """Every registered method: its family, what it is, and the config sections it reads beyond the shared ones
    (data, llm, seed, eval, report_to)."""
    lines = ["methods (config sections each reads besides data, llm, seed, eval):"]
    for name in methods.names() + methods.names(variants=True):
        m = methods.get(name)
        sections = methods.get(m.runs_as).sections  # a variant reads what its base reads
        reads = f" [{', '.join(sections)}]" if sections else ""
        lines.append(f"  {name:<20} {m.family:<9} {m.summary}{reads}")
    return "\n".join(lines)


def _data(args) -> None:
    from llmrec.data import info, registry

    if args.action == "list":
        for name, description in registry.list_datasets().items():
            options = registry.source_options(name)
            print(f"{name}: {description}" + (f"\n    options: {' '.join(options)}" if options else ""))
        return
    if not args.name:
        raise LlmrecError("data info: give a dataset name or a path (see `llmrec data list`)")
    options = _loader_options(args.overrides)
    canonical, source, resolved = registry.resolve(args.name, options)
    if args.path:  # --path names the source's file option (path, inter, reviews)
        resolved.setdefault(registry.file_option(source), args.path)
    if source.click is not None:
        print(info.format_info(info.describe_split(registry.load_click_split(canonical, **resolved))))
    else:
        print(info.format_info(info.describe(registry.load_dataset(canonical, **resolved))))


def _loader_options(items: list[str]) -> dict:
    """`key=value` words (also `data.options.key=value`, as `train` takes them) -> options; values read as YAML
    scalars or lists, as `train`'s overrides are."""
    import yaml

    options = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.removeprefix("data.options.")
        if not sep or not key or "." in key:
            raise LlmrecError(f"data info: expected loader options as key=value (e.g. user=uid), got {item!r}")
        try:
            options[key] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            raise LlmrecError(f"data info: option {key}: cannot read value {raw!r}") from None
    return options


def _train(args) -> None:
    from llmrec import experiment

    cfg = experiment.make_config(args.method, args.config, args.overrides)
    out = Path(args.out or Path("runs") / f"{cfg.method}-{cfg.data.dataset}")
    metrics = experiment.train(cfg, out)
    print(experiment.format_metrics(cfg.method, metrics))
    print(f"run saved in {out}")


def _evaluate(args) -> None:
    from llmrec import experiment

    print(experiment.format_parts(experiment.evaluate(args.run, parts=args.parts.split(","))))


def _id_list(text: str, option: str) -> list[str]:
    ids = [c.strip() for c in text.split(",") if c.strip()]
    if not ids:
        raise LlmrecError(f"{option}: no ids in {text!r}; give comma-separated ids")
    return ids


def _load(run: str):
    """The run's recommender, with a note (once, on stderr) when its ids are internal for lack of raw maps."""
    from llmrec.recommender import Recommender

    rec = Recommender.from_pretrained(run)
    if rec.ids.note:
        print(f"llmrec: note: {rec.ids.note}", file=sys.stderr)
    return rec


def _recommend(args) -> None:
    if sum(x is not None for x in (args.user, args.items, args.users)) != 1:
        raise LlmrecError("recommend: give exactly one of --user U, --items I1,I2,... (a new user's known items) "
                          "or --users FILE")
    if args.output and args.users is None:
        raise LlmrecError("--output: only with --users FILE (batch inference)")
    if args.k < 1:
        raise LlmrecError(f"-k: must be >= 1, got {args.k}")
    candidates = _id_list(args.candidates, "--candidates") if args.candidates is not None else None
    items = _id_list(args.items, "--items") if args.items is not None else None
    rec = _load(args.run)
    options = {"internal_ids": args.internal_ids}
    if args.users is not None:  # streamed: flat memory, output written atomically
        n = rec.recommend_stream(args.users, args.output, args.k, candidates, cold_start=args.cold_start,
                                 progress=not args.no_progress, **options)
        if args.output:
            print(f"wrote top-{args.k} lists of {n} users to {args.output}")
        return
    if items is not None:
        top = rec.recommend_for_items(items, k=args.k, candidates=candidates, **options)
    else:
        top = rec.recommend(args.user, k=args.k, candidates=candidates, cold_start=args.cold_start, **options)
    for rank, (item, title, score) in enumerate(top, 1):
        print(f"{rank:>3}  {score:9.4f}  {item!s:>6}  {title or item}")


def _score(args) -> None:
    rec = _load(args.run)
    n = rec.score_stream(args.pairs, args.output, cold_start=args.cold_start, internal_ids=args.internal_ids,
                         progress=not args.no_progress)  # streamed: flat memory, output written atomically
    if args.output:
        print(f"wrote {n} scores to {args.output}")


def _serve(args) -> None:
    from llmrec.server.config import ServerConfig
    from llmrec.server.run import serve

    serve(args.run, ServerConfig(host=args.host, port=args.port, max_batch=args.max_batch,
                                 max_wait_ms=args.max_wait_ms, timeout_s=args.timeout_s,
                                 max_body_bytes=args.max_body_bytes, max_pairs=args.max_pairs))


def _benchmark(args) -> None:
    from llmrec import experiment

    table, _ = experiment.benchmark(args.methods.split(","), args.config, args.overrides, Path(args.out))
    print(table)


def _demo(args) -> None:
    from llmrec import demo

    demo.main(out=Path(args.out), quick=args.quick, extra=args.overrides,
              methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()))


class _Parser(argparse.ArgumentParser):
    """Usage mistakes get the one-line form of every other bad input (no usage block), exit code 2."""

    def error(self, message: str):
        print(f"llmrec: error: {self.prog.removeprefix('llmrec').strip() + ': ' if self.prog != 'llmrec' else ''}"
              f"{message}", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="llmrec", description="Collaborative information in LLM recommenders.")
    p.add_argument("--version", action="version", version=f"llmrec {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("data", help="list datasets or describe one",
                       description="List the dataset sources with their options, or describe one dataset.",
                       epilog="Loader options are the same as train's data.options: e.g. `llmrec data info csv "
                              "--path r.csv user=uid item=mid rating=stars`, `llmrec data info amazon "
                              "--path Books.json.gz kcore=5`, `llmrec data info Beauty.seq`. "
                              "`llmrec data list` shows each source's options and defaults.")
    d.add_argument("action", choices=["list", "info"])
    d.add_argument("name", nargs="?", help="registered source (see `data list`) or a path to a file or folder")
    d.add_argument("--path", help="file or directory for sources that read your files (the source's first file "
                   "option: path, inter, reviews)")
    d.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="loader options, e.g. user=uid item=mid (also data.options.user=uid)")
    d.set_defaults(func=_data)

    t = sub.add_parser("train", help="train and evaluate a method; the run directory is resumable",
                       epilog=_methods_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("method", help="; ".join(f"{f}: {', '.join(methods.names(f))}" for f in methods.FAMILIES)
                   + f"; or a variant: {', '.join(methods.names(variants=True))}")
    t.add_argument("--config", help="YAML config (see configs/)")
    t.add_argument("--out", help="run directory (default runs/METHOD-DATASET)")
    t.add_argument("overrides", nargs="*", help="section.field=value, e.g. llm.backbone=tiny stage1.lr=3e-4")
    t.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="evaluate a saved run")
    e.add_argument("run")
    e.add_argument("--parts", default="test", help="comma-separated; " + "; ".join(
        f"{f.name} runs {', '.join(f.eval_parts)}" for f in methods.FAMILIES.values()) + " (lcrec: valid, test)")
    e.set_defaults(func=_evaluate)

    ids_help = "take and show the run's internal ids instead of the dataset's own"
    cold_help = ("for a user (or item) the run does not know: rank by train popularity instead of failing "
                 "(score: the item's share of train interactions, flagged in a cold_start column)")
    r = sub.add_parser("recommend", help="top-k items for a user (or a new user's known items) from a saved run")
    r.add_argument("run")
    r.add_argument("--user", help="user id, as in the dataset (see --internal-ids)")
    r.add_argument("--items", help="instead of --user: comma-separated item ids a new user interacted with "
                   "(cllm4rec, multvae, popularity-holdout runs)")
    r.add_argument("--users", help="instead of --user: a file of users (one id a line, or a CSV with a user_id "
                   "column), streamed; rows user_id,rank,item_id,title,score to --output (default stdout)")
    r.add_argument("--output", help="with --users: write the CSV here (atomically) instead of stdout")
    r.add_argument("--no-progress", action="store_true", help="with --users: no progress bar on stderr")
    r.add_argument("-k", type=int, default=10, help="how many items (>= 1)")
    r.add_argument("--candidates", help="comma-separated item ids to rank (default: all unseen items)")
    r.add_argument("--internal-ids", action="store_true", help=ids_help)
    r.add_argument("--cold-start", choices=["popularity"], help=cold_help)
    r.set_defaults(func=_recommend)

    s = sub.add_parser("score", help="score (user_id, item_id) pairs from a CSV")
    s.add_argument("run")
    s.add_argument("pairs", help="CSV with columns user_id,item_id (the dataset's ids, see --internal-ids)")
    s.add_argument("--output", help="write scores here (atomically) instead of stdout")
    s.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    s.add_argument("--internal-ids", action="store_true", help=ids_help)
    s.add_argument("--cold-start", choices=["popularity"], help=cold_help)
    s.set_defaults(func=_score)

    from llmrec.server.config import ServerConfig

    d0 = ServerConfig()
    v = sub.add_parser("serve", help="serve a saved run over HTTP (POST /score, POST /recommend, GET /health, "
                       "GET /info, docs at /docs), concurrent requests batched")
    v.add_argument("run")
    v.add_argument("--host", default=d0.host, help=f"address to listen on (default {d0.host}: this machine only)")
    v.add_argument("--port", type=int, default=d0.port, help=f"port (default {d0.port}; 0: any free port)")
    v.add_argument("--max-batch", type=int, default=d0.max_batch,
                   help=f"most requests coalesced into one model call (default {d0.max_batch}; 1: no batching)")
    v.add_argument("--max-wait-ms", type=float, default=d0.max_wait_ms,
                   help=f"how long a request waits for others to join its batch (default {d0.max_wait_ms} ms)")
    v.add_argument("--timeout-s", type=float, default=d0.timeout_s,
                   help=f"a request not answered by then gets 504 (default {d0.timeout_s} s)")
    v.add_argument("--max-body-bytes", type=int, default=d0.max_body_bytes,
                   help=f"larger request bodies get 413 (default {d0.max_body_bytes})")
    v.add_argument("--max-pairs", type=int, default=d0.max_pairs,
                   help=f"more pairs (or candidates) in one request get 413 (default {d0.max_pairs})")
    v.set_defaults(func=_serve)

    b = sub.add_parser("benchmark", help="run several methods on one dataset; markdown table + PNG figures")
    b.add_argument("--methods", required=True,
                   help="comma-separated methods of one family, or variants: "
                   + ", ".join(methods.names(variants=True)))
    b.add_argument("--config", help="YAML config shared by all methods")
    b.add_argument("--out", default="runs/benchmark")
    b.add_argument("overrides", nargs="*")
    b.set_defaults(func=_benchmark)

    m = sub.add_parser("demo", help="the main job: MF, TALLRec and BinLLM on ml-100k with the embedded LLM")
    m.add_argument("--out", default="runs/demo")
    m.add_argument("--quick", action="store_true", help="tiny budget (a minute), to check the pipeline")
    m.add_argument("--methods", default="mf,tallrec,binllm",
                   help="click methods or variants at the demo budget; finished runs in --out are reused, so "
                        "mf,tallrec,binllm,binllm-binary after a demo adds the binary vs dot-decimal comparison")
    m.add_argument("overrides", nargs="*", help="extra section.field=value overrides for all three runs")
    m.set_defaults(func=_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # overrides (section.field=value) may come before or after the options
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:
            if not hasattr(args, "overrides") or any("=" not in e or e.startswith("-") for e in extra):
                parser.error(f"unrecognized arguments: {' '.join(extra)}")
            args.overrides = list(args.overrides) + extra
    except SystemExit as exc:  # --help (0) or a usage error, already printed in one line (2)
        return int(exc.code or 0)
    try:
        args.func(args)
        if "torch.distributed" in sys.modules:  # under `accelerate launch`: end the process group before exit
            from llmrec.llm.train import close_processes

            close_processes()
    except LlmrecError as exc:
        print(f"llmrec: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("llmrec: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`llmrec data list | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
