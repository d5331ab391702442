"""The main job (`make demo`): MF, TALLRec and BinLLM on ml-100k with the embedded SmolLM2-135M, on CPU.

The split cuts each user's time line 80/10/10 (`data.cut_by=user`), so the test rows are mostly warm and the
collaborative signal the codes carry can be read.

Budget (6 minutes on 2 quiet CPU cores, 2.7 GB peak, README; `--quick` checks the pipeline in a minute): MF and the
BinLLM encoder train to early stopping; TALLRec tunes LoRA on 128 text-only prompts; BinLLM continues that
adapter (its stage 1, shared as in the paper) on 384 prompts with dot-decimal codes; prompts show the last 3
liked titles; all three methods are tested on the same 200 random test rows. No validation during the LLM
stages (the final state is kept). Optimizer steps see 8 prompts, as micro-batches of 4 so peak memory stays
under 4 GB. The full recipe is `llmrec train binllm --config configs/binllm-ml100k.yaml`.
"""
from __future__ import annotations

import time
from pathlib import Path

from llmrec import experiment

# The split cuts each user's own time line 80/10/10 (data.cut_by=user): the papers' global time cut leaves 86% of
# ml-100k's test rows on users with no train rows, where no collaborative signal can be read.
SHARED = ["data.dataset=ml-100k", "data.cut_by=user", "llm.history_titles=3", "eval.test_rows=200", "collab.epochs=40",
          "collab.patience=5", "encoder.epochs=60", "encoder.patience=10",
          "stage1.max_samples=128", "stage1.batch_size=4", "stage1.grad_accum_steps=2", "stage1.eval_rows=0",
          "stage2.max_samples=384", "stage2.batch_size=4", "stage2.grad_accum_steps=2", "stage2.lr=1e-3",
          "stage2.eval_rows=0"]
QUICK = ["eval.test_rows=40", "collab.epochs=3", "encoder.epochs=3", "stage1.max_samples=16",
         "stage2.max_samples=16"]


METHODS = ("mf", "tallrec", "binllm")


def main(out: Path = Path("runs/demo"), quick: bool = False, extra: list[str] | None = None,
         methods: tuple[str, ...] = METHODS) -> dict:
    """`llmrec benchmark` of `methods` at the demo's budget (BinLLM's stage 1 is the TALLRec run), then example
    recommendations. Runs already finished under `out` are reused: `methods=(*METHODS, "binllm-binary")` after
    a demo adds only the binary-code run and the binary vs dot-decimal figure."""
    overrides = SHARED + (QUICK if quick else []) + list(extra or [])
    started = time.perf_counter()
    table, results = experiment.benchmark(list(methods), None, overrides, out)
    print()
    test = results["mf"]["test"]
    print(f"ml-100k (each user's time line cut 80/10/10), {int(test['rows'])} test rows of which "
          f"{int(test.get('warm_rows', 0))} warm (user and item each have more than 3 train rows), SmolLM2-135M, "
          f"{time.perf_counter() - started:.0f} s in all (table and figures in {out})")
    print(table)
    _show_recommendations(out / "binllm")
    return results


def _show_recommendations(run_dir: Path, users=(1, 2), k: int = 5) -> None:
    from llmrec.recommender import Recommender

    rec = Recommender.from_pretrained(run_dir)
    for user in users:
        liked = [rec.item_titles.get(int(i), "") for i in rec.history.get(user, [])[-3:]]
        print(f"\nuser {user} recently liked: {'; '.join(liked)}")
        print(f"BinLLM top {k} (re-ranking the encoder's 50 best unseen items):")
        for rank, (item, title, score) in enumerate(rec.recommend(user, k=k, pool=50, internal_ids=True), 1):
            print(f"  {rank}. {title}  (item {item}, score {score:.3f})")
