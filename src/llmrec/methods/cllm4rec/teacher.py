"""A Mult-VAE teacher for CLLM4Rec's recommendation fine-tuning (`CLLM4RecConfig.teacher_weight`, ours).

Fine-tuning maximises the multinomial likelihood of a user's train items under the item head: the target is the
user's n train items, each with weight 1. With a teacher of weight w, the target becomes

    (1 - w) * (the n items, weight 1 each)  +  w * n * pi,

pi being Mult-VAE's softmax over the catalogue after reading the same train items: the same total weight, spread
over every item the teacher believes in, unseen ones included. Mult-VAE is trained first in the run with the
experiment's `multvae` section and seed; its probabilities for every user are kept in the run
(`teacher_probs.safetensors`), so a resumed run reads the same targets. The no-LLM control
(`cllm4rec-no-llm`) shares the config and so the teacher. docs/methods/cllm4rec.md reports what it buys.
"""
from __future__ import annotations

import numpy as np
import torch

TEACHER_FILE = "teacher_probs.safetensors"


def teacher_probs(experiment, split, run, tracker=None) -> tuple[torch.Tensor, dict]:
    """([n_users, n_items] Mult-VAE's item distribution per user, 0 at the padding id; a report), read back from
    the run when it has them."""
    from llmrec.collab.multvae import dense_rows, train_multvae

    if run.has(TEACHER_FILE):
        saved = run.load_tensors(TEACHER_FILE)
        return saved["probs"], run.load_json("teacher.json")
    result = train_multvae(split, experiment.multvae, checkpoint=run.file("teacher_checkpoint.safetensors"),
                           tracker=tracker, seed=experiment.seed)
    with torch.no_grad():
        probs = torch.softmax(result.model.scores(dense_rows(split.matrix("train"), np.arange(split.n_users))), dim=-1)
    report = {"best_epoch": result.best_epoch, "valid": result.best_valid,
              "test": {k: v for k, v in result.test.items() if not k.endswith(("_lo", "_hi"))},
              "train_seconds": round(result.seconds, 1)}
    run.save_json("teacher.json", report)
    run.save_tensors(TEACHER_FILE, {"probs": probs.float().contiguous()})
    return probs, report
