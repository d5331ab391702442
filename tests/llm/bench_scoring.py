"""Scoring speed of the official BinLLM ID prompt on SmolLM2-135M (not a test: run it by hand).

    LLMREC_HOME=... .venv/bin/python tests/llm/bench_scoring.py --threads 2 --prompts 32 --candidates 100

Prompts come from the CoLLM ML-1M test split when --data points at it (real titles and histories), else
from synthetic titles of similar length. Codes are random 32-bit binary strings (BinLLM's default text form).
Reports prompt tokens/s for: plain Hugging Face path (full LM head at every position, batches in file
order) vs all switches on; and ranking 100 candidates for one user with the shared-prefix KV cache vs scoring
the 100 full prompts independently (same switches otherwise).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from llmrec.llm.backbones import load_backbone
from llmrec.llm.prompts import PromptBuilder
from llmrec.llm.scoring import ScoringConfig, YesScorer, padding_fraction


def _code(rng) -> str:
    return "".join(rng.choice(["0", "1"], 32))


def _rows(data: str | None, n: int, rng):
    """(history titles, target title) pairs."""
    if data and Path(data).exists():
        from llmrec.data.collm import load_collm

        split = load_collm(data)
        titles = split.titles()
        frame = split.test.sample(n, random_state=0)
        return [([titles[i] for i in h], titles[t]) for h, t in zip(frame["history"], frame["item_id"])], titles
    words = ["Star", "Wars", "Story", "Heat", "Night", "The", "of", "Man", "Love", "City", "Return", "Dead"]
    make = lambda: " ".join(rng.choice(words, rng.integers(1, 6))) + f" ({rng.integers(1930, 2001)})"  # noqa: E731
    titles = {i: make() for i in range(1, 400)}
    return [([titles[j] for j in rng.integers(1, 400, rng.integers(0, 11))], titles[int(rng.integers(1, 400))])
            for _ in range(n)], titles


def _measure(fns: dict, repeats: int):
    """Run the callables in turn `repeats` times (interleaved, so load changes hit all alike); best wall and CPU
    seconds of each, and its last output. CPU seconds (all threads) are less sensitive to a shared machine."""
    best = {k: [float("inf"), float("inf"), None] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            out = fn()
            best[k] = [min(best[k][0], time.perf_counter() - w), min(best[k][1], time.process_time() - c), out]
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="smollm2-135m")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--data", default="/work/shared/data/collm-ml1m.zip")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    model, tok = load_backbone(args.backbone)
    builder = PromptBuilder("id_movie", tok, max_length=1024)
    rows, titles = _rows(args.data, args.prompts, rng)
    prompts = [builder.build(h, t, _code(rng), _code(rng)) for h, t in rows]
    lengths = [len(p) for p in prompts]
    n_tok = sum(lengths)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.backbone}, {args.threads} threads, "
          f"{len(prompts)} prompts, mean {np.mean(lengths):.0f} tokens "
          f"(min {min(lengths)}, max {max(lengths)}), batch {args.batch_size}")

    plain = YesScorer(model, tok, ScoringConfig(last_position_head=False, group_by_length=False, prefix_cache=False))
    fast = YesScorer(model, tok)
    fast.score(prompts[:2])  # warm-up
    order = [np.arange(i, min(i + args.batch_size, len(prompts))) for i in range(0, len(prompts), args.batch_size)]
    grouped = np.argsort(-np.array(lengths), kind="stable")
    grouped = [grouped[i:i + args.batch_size] for i in range(0, len(grouped), args.batch_size)]
    r = _measure({"plain": lambda: plain.score(prompts, args.batch_size),
                  "fast": lambda: fast.score(prompts, args.batch_size)}, args.repeats)
    (wp, cp, sp), (wf, cf, sf) = r["plain"], r["fast"]
    print(f"score, plain (full LM head at all positions, file order, padding {padding_fraction(lengths, order):.1%}): "
          f"{n_tok / wp:.0f} prompt tokens/s wall, {n_tok / cp:.0f} per CPU-second")
    print(f"score, switches on (last-position answer rows, length-grouped, padding "
          f"{padding_fraction(lengths, grouped):.1%}): {n_tok / wf:.0f} prompt tokens/s wall, {n_tok / cf:.0f} per "
          f"CPU-second; speed-up x{wp / wf:.2f} wall, x{cp / cf:.2f} CPU; max |score diff| {np.abs(sp - sf).max():.1e}")

    history = next(h for h, _ in rows if len(h) >= 10)
    cands = list(titles.values())[: args.candidates]
    user_code = _code(rng)
    cand_prompts = [builder.build(history, t, user_code, _code(rng)) for t in cands]
    c_tok = sum(len(p) for p in cand_prompts)
    prefix = cand_prompts[0].candidate_start
    r = _measure({"independent": lambda: fast.score(cand_prompts, args.batch_size),
                  "kv": lambda: fast.rank(cand_prompts, args.batch_size)}, args.repeats)
    (wi, ci, si), (wk, ck, sk) = r["independent"], r["kv"]
    print(f"rank {len(cands)} candidates of one user (shared prefix {prefix} tokens, mean prompt "
          f"{c_tok / len(cands):.0f}): independent {wi:.1f} s wall / {ci:.1f} CPU-s, prefix KV cache {wk:.1f} s / "
          f"{ck:.1f} CPU-s: x{wi / wk:.2f} wall, x{ci / ck:.2f} CPU; max |score diff| {np.abs(si - sk).max():.1e}")


if __name__ == "__main__":
    main()
