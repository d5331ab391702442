"""LightGCN-BPR's config section `bpr` (the loop: llmrec.methods.cllm4rec.baselines.train_lightgcn_bpr)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BPRConfig:
    """LightGCN + BPR for ranking (defaults: the LightGCN paper)."""

    dim: int = 64
    """Embedding size."""
    layers: int = 3
    """Propagation layers."""
    init_std: float = 0.1
    """Std of the normal initialisation of the layer-0 embeddings."""
    lr: float = 1e-3
    """Adam learning rate."""
    reg: float = 1e-4
    """Weight of the L2 penalty on the batch's layer-0 embeddings."""
    batch_size: int = 2048
    """Triples (u, i, j) per update."""
    epochs: int = 1000
    """Maximum passes over the train pairs."""
    eval_every: int = 5
    """Epochs between validations."""
    patience: int | None = 10
    """Validations without gain before stopping; None never stops early."""
    eval_batch_size: int = 1024
    """Users per scoring batch."""
    progress: bool = True
    """Show a tqdm bar over epochs."""
