"""Entry point: `python -m bench.run [--smoke] [--full-demo] [--out BENCHMARKS.md] [--sections a,b]`.

Runs the sections in order (each one's failure is recorded in the report, and the others still run), then writes
the report atomically after every section (a long run shows its progress; a killed one keeps what it measured).
Exit status 1 when a section failed, so a broken benchmark does not pass unnoticed. `--sections` writes a report
of those sections only: give it its own `--out` to keep the full BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SECTIONS = [  # (key, title, module): order matters, `matmul` first (its peak feeds the utilisation figures)
    ("matmul", "Machine peak: fp32 matmul", "matmul"),
    ("tokens", "Prompt tokens per sample", "tokens"),
    ("scoring", "LLM scoring: speed switches on vs off", "scoring"),
    ("training", "LoRA training: stage 1 and stage 2", "training"),
    ("ranking", "Ranking C candidates for one user: prefix KV cache vs independent prompts", "ranking"),
    ("lcrec", "LC-Rec: constrained beam search vs generate + prefix_allowed_tokens_fn", "lcrec"),
    ("cllm4rec", "CLLM4Rec: full-catalogue ranking", "cllm4rec"),
    ("collab", "Collaborative models: seconds per epoch", "collab"),
    ("profile", "What the profiler shows", "profiling"),
    ("memory", "Peak memory of the demo", "memory"),
    ("serve", "HTTP serving under load: batching on vs off", "serve"),
]
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def parse(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description="llmrec speed and memory benchmarks")
    ap.add_argument("--smoke", action="store_true", help="tiny backbone, synthetic data, one repetition (seconds)")
    ap.add_argument("--full-demo", action="store_true", help="also measure the peak memory of the full `llmrec demo`")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report path (default: BENCHMARKS.md in the repo)")
    ap.add_argument("--sections", help=f"comma-separated subset of: {', '.join(k for k, _, _ in SECTIONS)}")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice, the physical cores)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    import importlib

    import torch

    from bench import flops, report
    from bench.common import Budget, Context, Section, hardware

    if args.threads:
        torch.set_num_threads(args.threads)
    elif args.smoke:  # tiny ops on a busy machine: a second thread mostly waits at barriers
        torch.set_num_threads(1)
    wanted = [k for k, _, _ in SECTIONS]
    if args.sections:
        wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
        unknown = sorted(set(wanted) - {k for k, _, _ in SECTIONS})
        if unknown:
            print(f"bench: unknown section(s) {', '.join(unknown)}; known: {', '.join(k for k, _, _ in SECTIONS)}",
                  file=sys.stderr)
            return 2
    budget = Budget.smoke() if args.smoke else Budget.full()
    ctx = Context(budget, smoke=args.smoke, full_demo=args.full_demo)
    command = "python -m bench.run" + (" " + " ".join(sys.argv[1:] if argv is None else argv)).rstrip()
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    hw = hardware()
    started = time.perf_counter()
    sections: list[Section] = []
    hand_written = report.hand_written_sections(args.out)  # read once: the first write replaces the file

    def write(sections: list[Section], done: bool) -> None:
        info = dict(hw)
        info["load average (1/5/15 min) at end" if done else "load average (1/5/15 min) now"] = \
            " / ".join(f"{x:.2f}" for x in os.getloadavg())
        shape = flops.shape_of(ctx.backbone[0]) if "backbone" in ctx.__dict__ else None
        pending = [t for k, t, _ in SECTIONS if k in wanted][len(sections):]
        report.write(args.out, report.render(command, date, info, sections, time.perf_counter() - started,
                                             args.smoke, shape, pending, hand_written))

    for key, title, module in SECTIONS:
        if key not in wanted:
            continue
        sec = Section(key, title)
        print(f"bench: {title} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        try:
            importlib.import_module(f"bench.{module}").run(ctx, sec)
        except Exception as e:  # recorded in the report; the other sections still run
            traceback.print_exc()
            sec.failed = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"
        sec.seconds = time.perf_counter() - t
        print(f"bench: {title}: {sec.seconds:.0f} s" + (f" FAILED {sec.failed}" if sec.failed else ""),
              file=sys.stderr, flush=True)
        sections.append(sec)
        # written after every section: a long run shows its progress, a killed one leaves what it measured
        write(sections, done=len(sections) == len({k for k, _, _ in SECTIONS} & set(wanted)))
    print(f"bench: wrote {args.out}", file=sys.stderr)
    for s in sections:
        for tg in s.targets:
            print(f"{tg.verdict:4}  {tg.name}: {tg.measured} (goal {tg.goal})")
    return 1 if any(s.failed for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
