"""Run by test_loop.py under `accelerate launch` (2 CPU processes): the epoch loop on copies that differ per process
(each process seeds its own), written as JSON per process.

Usage: python epochs_two_processes.py CHECKPOINT RESULT_JSON
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from llmrec.collab import loop
from llmrec.llm.train import close_processes

if __name__ == "__main__":
    rank = int(os.environ["RANK"])
    writes = []
    save = loop.save_training_state
    loop.save_training_state = lambda *a, **k: writes.append(1) or save(*a, **k)
    torch.manual_seed(rank)  # the copies differ, as CUDA's non-deterministic kernels can make them
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 4, generator=torch.Generator().manual_seed(rank)), torch.ones(32, 1)

    def train_epoch(epoch):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    before = [p.detach().flatten().tolist() for p in model.parameters()]
    result = loop.run_epochs(model, opt, train_epoch, lambda: {"neg_loss": -((model(x) - y) ** 2).mean().item()},
                             epochs=3, metric="neg_loss", checkpoint=sys.argv[1], progress=False)
    out = {"rank": rank, "writes": len(writes), "before": before,
           "after": [p.detach().flatten().tolist() for p in model.parameters()],
           "best_state": [v.flatten().tolist() for v in result.best_state.values()]}
    Path(f"{sys.argv[2]}.{rank}").write_text(json.dumps(out))
    close_processes()
