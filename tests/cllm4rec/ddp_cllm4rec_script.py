"""Run by test_cllm4rec_ddp.py under `accelerate launch` (2 CPU processes) and in-process (1 process): CLLM4Rec
fine-tuning on the tiny backbone and planted data, written as JSON per process.

Usage: python ddp_cllm4rec_script.py OUT_DIR RESULT_JSON PER_PROCESS_BATCH
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from planted_data import cllm4rec_experiment, planted_dataset  # noqa: E402

from llmrec.data.holdout import holdout_split  # noqa: E402
from llmrec.experiment import train  # noqa: E402
from llmrec.llm.train import close_processes, make_accelerator  # noqa: E402


def run(out_dir: str, per_process_batch: int) -> dict:
    acc = make_accelerator(find_unused_parameters=True)
    split = holdout_split(planted_dataset(n_users=26, per_user=10), min_count=1)
    # no pre-training: one process takes one document batch per step there, so a step's batches depend on the
    # number of processes; fine-tuning's global batch (processes x per-process batch) is what is compared
    cfg = cllm4rec_experiment(device="cpu", content_epochs=0, alternate_epochs=0, finetune_epochs=2,
                              finetune_batch_size=per_process_batch, finetune_lr=0.05, eval_every=2, patience=None,
                              max_valid_users=11, eval_users_per_batch=3, init_std=0.1)
    metrics = train(cfg, out_dir, split=split)  # one run directory, written by the main process only
    history = [{k: v for k, v in h.items() if k != "train_seconds"} for h in metrics["stages"]["finetune"]["history"]]
    return {"num_processes": acc.num_processes, "process_index": acc.process_index, "history": history,
            "valid": metrics["valid"], "test": metrics["test"]}


if __name__ == "__main__":
    out = run(sys.argv[1], int(sys.argv[3]))
    Path(f"{sys.argv[2]}.{out['process_index']}").write_text(json.dumps(out))
    close_processes()
