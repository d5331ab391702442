"""Run by test_train_loop.py under `accelerate launch` (2 CPU processes) and in-process (1 process).

Usage: python ddp_train_script.py OUT_DIR RESULT_JSON PER_PROCESS_BATCH
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_tiny_task import RowIdTask, TinyTask, make_data, make_mlp  # noqa: E402

from llmrec.llm.train import TrainConfig, fit, make_accelerator, predict_rows  # noqa: E402
from llmrec.metrics import auc  # noqa: E402

N_TRAIN, N_EVAL = 96, 37  # 37: not a multiple of processes x eval batch, so shards are uneven


def run(out_dir: str, per_process_batch: int) -> dict:
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
    res = fit(TinyTask(module, x, y), N_TRAIN, N_EVAL, evaluate, cfg, out_dir,
              eval_task=TinyTask(module, xe, ye), accelerator=acc)
    return {"num_processes": acc.num_processes, "process_index": acc.process_index, "row_ids": ids.tolist(),
            "eval_scores": seen, "history": [{k: v for k, v in h.items() if k != "train_seconds"}
                                             for h in res.history],
            "lrs": [r["lr"] for r in res.train_log],
            "params": [p.detach().flatten().tolist() for p in module.parameters()]}


if __name__ == "__main__":
    out = run(sys.argv[1], int(sys.argv[3]))
    Path(f"{sys.argv[2]}.{out['process_index']}").write_text(json.dumps(out))
