"""The main job (`make demo`): MF, TALLRec and BinLLM on ml-100k with the embedded SmolLM2-135M, on CPU.

Budget (about 10 minutes on 2 CPU cores; `--quick` is a one-minute pipeline check): MF and the BinLLM encoder
train to early stopping; TALLRec tunes LoRA on 128 text-only prompts; BinLLM continues that adapter (its stage 1,
shared as in the paper) on 384 prompts with dot-decimal codes; prompts show the last 3 liked titles; all three
methods are tested on the same 200 random test rows. No validation during the LLM stages (the final state is
kept). The full recipe is `llmrec train binllm --config configs/binllm-ml100k.yaml`.
"""
from __future__ import annotations

import time
from pathlib import Path

from llmrec import experiment
from llmrec.report import markdown_table

SHARED = ["data.dataset=ml-100k", "llm.history_titles=3", "eval.test_rows=200", "collab.epochs=40",
          "collab.patience=5", "encoder.epochs=60", "encoder.patience=10",
          "stage1.max_samples=128", "stage1.batch_size=8", "stage1.eval_rows=0",
          "stage2.max_samples=384", "stage2.batch_size=8", "stage2.lr=1e-3", "stage2.eval_rows=0"]
QUICK = ["eval.test_rows=40", "collab.epochs=3", "encoder.epochs=3", "stage1.max_samples=16",
         "stage2.max_samples=16"]


def main(out: Path = Path("runs/demo"), quick: bool = False, extra: list[str] | None = None) -> dict:
    overrides = SHARED + (QUICK if quick else []) + list(extra or [])
    started = time.perf_counter()
    results = {}
    for method, more in (("mf", []), ("tallrec", []),
                         ("binllm", [f"stage1_from={out / 'tallrec'}"])):
        t = time.perf_counter()
        print(f"== {method}", flush=True)
        cfg = experiment.make_config(method, None, overrides + more)
        results[method] = experiment.train(cfg, out / method)
        print(f"   {method}: {time.perf_counter() - t:.0f} s", flush=True)
    rows = [{"method": m, "test AUC": r["test"]["auc"], "test UAUC": r["test"]["uauc"],
             "LLM samples": _samples(r), "prompt tokens": r["test"].get("prompt_tokens_per_sample")}
            for m, r in results.items()]
    print()
    print(f"ml-100k, {int(results['mf']['test']['rows'])} test rows, SmolLM2-135M, "
          f"{time.perf_counter() - started:.0f} s in all")
    print(markdown_table(rows))
    _show_recommendations(out / "binllm")
    return results


def _samples(result: dict) -> int | None:
    n = sum(result.get(s, {}).get("samples", 0) or 0 for s in ("stage1", "stage2"))
    return n or None


def _show_recommendations(run_dir: Path, users=(1, 2), k: int = 5) -> None:
    from llmrec.recommender import Recommender

    rec = Recommender.from_pretrained(run_dir)
    for user in users:
        liked = [rec.titles.get(int(i), "") for i in rec.history.get(user, [])[-3:]]
        print(f"\nuser {user} recently liked: {'; '.join(liked)}")
        print(f"BinLLM top {k} (re-ranking the encoder's 50 best unseen items):")
        for rank, (item, title, score) in enumerate(rec.recommend(user, k=k, pool=50), 1):
            print(f"  {rank}. {title}  (item {item}, score {score:.3f})")
