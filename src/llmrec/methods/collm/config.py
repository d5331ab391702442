"""CoLLM's config section `collm`."""
from __future__ import annotations

import typing
from dataclasses import dataclass


@dataclass
class CoLLMConfig:
    """CoLLM specifics."""

    collab_model: typing.Literal["mf", "lightgcn", "sasrec", "din", "binmf"] = "mf"
    """Collaborative model whose embeddings are mapped: mf, lightgcn, sasrec, din (trained from the `collab`
    section), or binmf (ours: BinLLM's encoder, trained from the `encoder` section; its +-1 codes are the
    embeddings, so CoLLM and BinLLM can read the same collaborative model)."""
    tune_collab: bool = False
    """Also train the collaborative model in stage 2; the run then keeps the pre-trained weights in
    collab.safetensors and the tuned ones in collab_tuned.safetensors (which the recommender reads)."""
