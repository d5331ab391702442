"""Run by test_two_processes.py under `accelerate launch --num_processes 2`: a saved run's test evaluation with its
rows split over the processes, written as JSON per process.

Usage: python two_process_eval.py RUN_DIR RESULT_JSON

On a GPU the process group is gloo's, set up before anything else: NCCL refuses two processes on one GPU, and gloo
gathers CUDA tensors too. The same script checks the split on the CPU (the launcher's gloo group).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from accelerate import PartialState

if torch.cuda.is_available():  # (on the CPU the launcher's gloo group is already the right one)
    if torch.cuda.device_count() == 1:
        os.environ["LOCAL_RANK"] = "0"  # both processes share the one GPU: each is its local process 0
    PartialState(backend="gloo")

from cuda_checks import backbone_of  # noqa: E402

from llmrec.llm.train import close_processes, make_accelerator  # noqa: E402
from llmrec.recommender import Recommender  # noqa: E402

if __name__ == "__main__":
    acc = make_accelerator()
    rec = Recommender.from_pretrained(sys.argv[1])
    out = {"num_processes": acc.num_processes, "process_index": acc.process_index,
           "test": rec.evaluate("test"), "device": str(next(backbone_of(rec).parameters()).device)}
    Path(f"{sys.argv[2]}.{acc.process_index}").write_text(json.dumps(out))
    close_processes()
