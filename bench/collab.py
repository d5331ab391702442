"""Collaborative models: seconds per epoch (train pass + valid_small scoring) with the common trainer."""
from __future__ import annotations

import os
import statistics
from pathlib import Path

import torch

from bench.common import Context, Section, table

COLLM_ML1M = Path("/work/shared/data/collm-ml1m.zip")


def collm_path() -> Path | None:
    env = os.environ.get("LLMREC_COLLM_ML1M")
    for p in ([Path(env)] if env else []) + [COLLM_ML1M]:
        if p.exists():
            return p
    return None


def run(ctx: Context, sec: Section) -> None:
    from llmrec import collab
    from llmrec.collab import trainer
    from llmrec.methods.binllm.model import BinaryEncoder, EncoderConfig

    path = None if ctx.smoke else collm_path()
    if path is not None:
        from llmrec.data.collm import load_collm

        split, where = load_collm(path), f"the CoLLM ML-1M split ({path.name})"
    else:
        split = ctx.split
        where = (f"the {split.name} click split (the CoLLM ML-1M split was not found: set $LLMREC_COLLM_ML1M)"
                 if not ctx.smoke else f"the {split.name} split (smoke run)")
    e = ctx.budget.collab_epochs
    sec.add(f"On {where}: {len(split.train):,} train rows, {len(split.valid_small):,} valid_small rows; paper "
            f"defaults (`collab.build_model`), `collab.trainer.fit` for {e} epochs (no early stop); an epoch = a "
            f"shuffled pass in batches of 1024 (BinLLM encoder: 2048) + scoring valid_small. Median over the epochs.", "")
    rows = []
    models = [(name, lambda name=name: collab.build_model(name, split.n_users, split.n_items), 1024)
              for name in collab.MODELS]
    models.append(("binllm encoder (BinMF)", lambda: BinaryEncoder(split.n_users, split.n_items, EncoderConfig()), 2048))
    for name, make, batch in models:
        torch.manual_seed(0)
        model = make()
        res = trainer.fit(model, split.train, split.valid_small, None,
                          trainer.TrainConfig(epochs=e, patience=10**6, progress=False, batch_size=batch))
        secs = [h["seconds"] for h in res.history]
        rows.append([name, f"{statistics.median(secs):.2f}", f"{min(secs):.3g}-{max(secs):.3g}",
                     f"{len(split.train) / statistics.median(secs):,.0f}"])
    sec.add(*table(["model", "s/epoch (median)", "min-max", "train rows/s (incl. validation)"], rows))
