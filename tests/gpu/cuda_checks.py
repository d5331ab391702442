"""What tests/gpu/test_cuda_methods.py runs, written device-agnostic (a plain module: `conftest` names clash across
test folders): train an LLM method a few steps on the tiny backbone on one device and dtype, serve the saved run
there (evaluate / recommend / score), then score the same pairs from the same saved weights on the CPU in float32
and compare.

On CUDA the run is trained with `llm.dtype=auto` (bfloat16 there); `check_method(..., dtype="bfloat16")` runs the
same checks on a CPU-only machine (bfloat16 on CPU), which is how this module itself is tested without a GPU.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch

from llmrec import experiment
from llmrec.llm import backbones
from llmrec.recommender import Recommender

CLICK_TINY = ["llm.backbone=tiny", "stage1.max_samples=32", "stage1.batch_size=8", "stage1.eval_every=2",
              "stage1.eval_rows=24", "stage2.max_samples=16", "stage2.eval_every=2", "stage2.eval_rows=24",
              "encoder.epochs=3", "collab.epochs=2", "eval.test_rows=40", "eval.batch_size=8"]
"""As tests/methods/test_click_methods.py's TINY."""
LCREC_TINY = ["llm.backbone=tiny", "lcrec.text_encoder=backbone", "lcrec.max_steps=4", "lcrec.eval_every=2",
              "lcrec.batch_size=4", "lcrec.valid_users=4", "lcrec.test_users=6", "lcrec.num_beams=5",
              "lcrec.eval_batch_size=3",
              "lcrec.rqvae={levels: 3, codebook_size: 4, e_dim: 8, epochs: 10, batch_size: 32, eval_every: 5}"]
"""As tests/lcrec/test_lcrec_cli.py's LCREC_TINY (4 steps)."""
CLLM4REC_TINY = ["llm.backbone=tiny", "cllm4rec.content_epochs=0.5", "cllm4rec.alternate_epochs=0.5",
                 "cllm4rec.max_content_docs=40", "cllm4rec.pretrain_batch_size=8", "cllm4rec.finetune_epochs=2",
                 "cllm4rec.finetune_batch_size=8", "cllm4rec.eval_every=2", "cllm4rec.patience=null",
                 "cllm4rec.max_valid_users=10", "cllm4rec.init_std=0.1", "cllm4rec.lora=true"]
"""As tests/cllm4rec/test_cllm4rec_cli.py's TINY, on the resolved device (not cpu), with LoRA adapters."""

TOLERANCE = 0.05
"""bfloat16 keeps 8 significant bits (relative rounding 2^-9 ~ 0.002 per operation); through the tiny backbone's
two layers the scores of the bf16 run and of the same weights in float32 differ by a few hundredths of their
spread. Checked: max |bf16 - fp32| <= TOLERANCE x (1 + the fp32 scores' standard deviation), and the two score
lists correlate above 0.98 (Pearson)."""


def data_overrides(method: str, tmp: Path) -> list[str]:
    """The data each family's tests use, written as a CSV so every method reads it through `data.dataset=csv`."""
    from synthetic import CSV_OPTIONS, write_ratings_csv

    if method != "cllm4rec":
        return ["data.dataset=csv", f"data.path={write_ratings_csv(tmp / 'ratings.csv')}", CSV_OPTIONS]
    from cllm4rec.planted_data import planted_dataset

    ds = planted_dataset(n_users=30, n_items=40, per_user=12)
    inter = ds.interactions.copy()
    inter["title"] = inter["item_id"].map(ds.titles())
    inter.to_csv(tmp / "planted.csv", index=False)
    return ["data.dataset=csv", f"data.path={tmp / 'planted.csv'}", CSV_OPTIONS, "holdout.min_count=1"]


def overrides(method: str) -> list[str]:
    return {"lcrec": LCREC_TINY, "cllm4rec": CLLM4REC_TINY}.get(method, CLICK_TINY)


@contextlib.contextmanager
def served_on_cpu_float32():
    """Every backbone (and model placed by `resolve_device`) loaded on the CPU in float32 while inside."""
    real_device, real_dtype = backbones.resolve_device, backbones._resolve_dtype
    backbones.resolve_device = lambda device="auto": torch.device("cpu")
    backbones._resolve_dtype = lambda dtype, device: torch.float32
    try:
        yield
    finally:
        backbones.resolve_device, backbones._resolve_dtype = real_device, real_dtype


def backbone_of(rec) -> torch.nn.Module:
    """The LLM a recommender scores with (its parameters tell the device and dtype it was served with)."""
    for path in ("_llm.model", "model.backbone", "model"):
        obj = rec
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, torch.nn.Module):
            return obj
    raise AssertionError(f"no backbone found on {type(rec).__name__}")


def sample_pairs(rec, n: int = 12) -> tuple[list[int], list[int]]:
    """(users, items): internal ids of the run's users and items, a fixed spread over both."""
    ids = rec.ids
    users = sorted(ids.known_users)[:n] if hasattr(ids, "known_users") else list(range(1, n + 1))
    items = [1 + (3 * k) % max(1, ids.n_items - 1) for k in range(len(users))]
    return users, items


def check_method(method: str, tmp: Path, dtype: str = "auto") -> dict:
    """Train `method` on the resolved device in `dtype`, serve the run there, compare with CPU float32; returns
    the numbers compared (for a report)."""
    run_dir = tmp / method
    cfg = experiment.make_config(method, None, data_overrides(method, tmp) + overrides(method) + [f"llm.dtype={dtype}"])
    metrics = experiment.train(cfg, run_dir)
    assert (run_dir / "metrics.json").exists() and metrics["test"]

    rec = Recommender.from_pretrained(run_dir)
    served = next(backbone_of(rec).parameters())
    want = backbones.resolve_device("auto")
    assert served.device.type == want.type, (served.device, want)
    again = rec.evaluate("test")
    assert again and all(np.isfinite(v) for v in again.values() if isinstance(v, float))
    users, items = sample_pairs(rec)
    top = rec.recommend(users[0], k=3, internal_ids=True)
    assert len(top) == 3 and [s for *_, s in top] == sorted((s for *_, s in top), reverse=True)
    scores = np.asarray(rec.score(users, items, internal_ids=True), dtype=np.float64)
    assert np.isfinite(scores).all()
    del rec
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

    with served_on_cpu_float32():
        ref = Recommender.from_pretrained(run_dir)
        assert next(backbone_of(ref).parameters()).dtype == torch.float32
        expected = np.asarray(ref.score(users, items, internal_ids=True), dtype=np.float64)
    diff = float(np.abs(scores - expected).max())
    spread = float(expected.std())
    corr = float(np.corrcoef(scores, expected)[0, 1]) if spread > 0 else 1.0
    assert diff <= TOLERANCE * (1 + spread), (method, diff, spread)
    assert corr > 0.98, (method, corr)
    return {"method": method, "max_abs_diff": diff, "fp32_std": spread, "pearson": corr}
