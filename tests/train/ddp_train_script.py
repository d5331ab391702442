"""Run by test_train_loop.py under `accelerate launch` (2 CPU processes) and in-process (1 process).

Usage: python ddp_train_script.py OUT_DIR RESULT_JSON PER_PROCESS_BATCH [MODE [FAIL_AT]]

MODE plain (default): the basic recipe. accum: accumulate 2 micro-batches, clip gradients (the clip binds),
evaluate in batches of 3 (uneven batch counts per process: 19 rows vs 18), and select on the mean score, so the
untrained state of step 0 is the best one and is restored. fsdp: accum, sharded with FSDP 2 (TrainConfig.fsdp).
FAIL_AT: the run is killed inside that loss call (exit code 3, no result written).
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_tiny_task import RowIdTask, SimulatedKill, TinyTask, make_data, make_mlp  # noqa: E402

from safetensors.torch import load_file  # noqa: E402

from llmrec.llm.train import (CHECKPOINT_FILE, TRAINABLE_FILE, TrainConfig, close_processes, fit,  # noqa: E402
                               make_accelerator, predict_rows)
from llmrec.metrics import auc  # noqa: E402

N_TRAIN, N_EVAL = 96, 37  # 37: not a multiple of processes x eval batch, so shards are uneven


def run(out_dir: str, per_process_batch: int, mode: str = "plain", fail_at: int | None = None) -> dict:
    acc = make_accelerator()
    x, y = make_data(N_TRAIN, seed=1)
    xe, ye = make_data(N_EVAL, seed=2)
    module = make_mlp(seed=0)
    ids = predict_rows(RowIdTask(module, xe, ye), N_EVAL, batch_size=4, accelerator=acc)
    seen = []

    def evaluate(scores: np.ndarray) -> dict:
        seen.append(scores.tolist())
        return {"auc": auc(ye.numpy(), scores), "mean": float(scores.mean())}

    cfg = TrainConfig(lr=0.05, batch_size=per_process_batch, max_steps=6, eval_every=3, eval_at_start=True,
                      eval_batch_size=4, warmup_steps=2, patience=None, seed=7, log_every=1)
    if mode in ("accum", "fsdp"):
        cfg = dataclasses.replace(cfg, fsdp=mode == "fsdp", grad_accum_steps=2, max_grad_norm=0.05,
                                  eval_batch_size=3)
    res = fit(TinyTask(module, x, y, fail_at=fail_at), N_TRAIN, N_EVAL, evaluate, cfg, out_dir,
              selection_metric="auc" if mode == "plain" else "mean", eval_task=TinyTask(module, xe, ye),
              accelerator=acc)
    after = predict_rows(RowIdTask(module, xe, ye), N_EVAL, batch_size=3, accelerator=acc)  # sharded under fsdp
    return {"num_processes": acc.num_processes, "process_index": acc.process_index, "row_ids": ids.tolist(),
            "row_ids_after": after.tolist(), "eval_scores": seen,
            "scores_after": predict_rows(TinyTask(module, xe, ye), N_EVAL, 5, acc).tolist(),
            "history": [{k: v for k, v in h.items() if k != "train_seconds"} for h in res.history],
            "lrs": [r["lr"] for r in res.train_log],
            "shards": [[p.to_local().numel(), p.numel()] if type(p).__name__ == "DTensor" else None
                       for p in module.parameters()],
            "params": {n: _full(p).detach().flatten().tolist() for n, p in module.named_parameters()},
            "best": {k: v.flatten().tolist()
                     for k, v in load_file(str(Path(out_dir) / "best" / TRAINABLE_FILE)).items()},
            "last": {k: v.flatten().tolist()  # the final checkpoint's weights: the last step's
                     for k, v in load_file(str(Path(out_dir) / "checkpoint" / CHECKPOINT_FILE)).items()
                     if k.startswith("trainable.")}}  # keys: trainable.<name>


def _full(p):
    return p.full_tensor() if type(p).__name__ == "DTensor" else p


if __name__ == "__main__":
    mode = sys.argv[4] if len(sys.argv) > 4 else "plain"
    try:
        out = run(sys.argv[1], int(sys.argv[3]), mode, int(sys.argv[5]) if len(sys.argv) > 5 else None)
    except SimulatedKill:
        close_processes()
        sys.exit(3)
    Path(f"{sys.argv[2]}.{out['process_index']}").write_text(json.dumps(out))
    close_processes()
