"""Mult-VAE's config section `multvae` (the model and its loop: llmrec.collab.multvae)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MultVAEConfig:
    """Mult-VAE architecture and training (defaults: the authors' ML-20M recipe)."""

    hidden: int = 600
    """Width of the encoder's and decoder's hidden layer."""
    latent: int = 200
    """Size of z."""
    dropout: float = 0.5
    """Dropout on the normalised input (the notebook's keep_prob 0.5)."""
    beta_cap: float = 0.2
    """Largest KL weight beta (anneal_cap)."""
    anneal_steps: int | None = None
    """Updates over which beta rises linearly from 0 to 1 (then capped at beta_cap). The authors use 200,000 on
    ML-20M, where the cap is reached after 40,000 of about 54,000 updates; None keeps that proportion here:
    beta reaches the cap at 75% of the planned updates."""
    lr: float = 1e-3
    """Adam learning rate."""
    weight_decay: float = 0.0
    """Adam L2 weight decay (the authors' Mult-VAE: 0)."""
    batch_size: int = 500
    """Users per update."""
    epochs: int = 200
    """Maximum passes over the users."""
    patience: int | None = 50
    """Stop after this many epochs without a validation NDCG@100 gain; None never stops early."""
    eval_batch_size: int = 1024
    """Users per scoring batch."""
    progress: bool = True
    """Show a tqdm bar over epochs."""
