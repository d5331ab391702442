"""Run by test_lcrec_fsdp.py under `accelerate launch` (2 CPU processes): LC-Rec's full fine-tuning on the tiny
backbone, sharded with FSDP 2 (and activation checkpointing) or replicated (DDP), written as JSON per process.

Usage: python fsdp_lcrec_script.py OUT_DIR RESULT_JSON fsdp|ddp

ddp under a launch with configs/accelerate/fsdp.yaml shards too (the launch asks for it).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lcrec_fixtures import lcrec_experiment, synthetic_split  # noqa: E402

from llmrec.experiment import train  # noqa: E402
from llmrec.llm import sharding  # noqa: E402
from llmrec.llm.train import close_processes, make_accelerator  # noqa: E402

FULL = dict(index="random", finetune="full", lr=1e-3, max_steps=4, eval_every=2, batch_size=2, valid_users=6,
            test_users=8, num_beams=5, eval_batch_size=3)


def run(out_dir: str, mode: str) -> dict:
    acc = make_accelerator()
    cfg = lcrec_experiment(**FULL)
    cfg.llm.fsdp = mode == "fsdp"
    cfg.llm.gradient_checkpointing = mode == "fsdp"  # the 7B setting; the same gradients as without it
    shard, roots = sharding.shard, []
    sharding.shard = lambda root, inner, bf16: roots.append(bf16) or shard(root, inner, bf16)  # count them
    metrics = train(cfg, out_dir, split=synthetic_split(n_users=16))
    history = [{k: v for k, v in h.items() if k != "train_seconds"} for h in metrics["history"]]
    return {"num_processes": acc.num_processes, "process_index": acc.process_index, "history": history,
            "test": metrics["test"], "sharded_bf16": roots}


if __name__ == "__main__":
    out = run(sys.argv[1], sys.argv[3])
    Path(f"{sys.argv[2]}.{out['process_index']}").write_text(json.dumps(out))
    close_processes()
