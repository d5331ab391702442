"""sasrec-rank's config section `seqrank` (the loop: llmrec.collab.ranking)."""
from __future__ import annotations

import typing
from dataclasses import dataclass, field


@dataclass
class SeqRankConfig:
    """Next-item training of SASRec with early stopping on valid NDCG@10: the `seqrank` section (sasrec-rank).
    The seed is the experiment's and seen items follow the family's rule (`lcrec.exclude_seen`)."""

    loss: typing.Literal["ce", "bce"] = "ce"
    """'ce': softmax cross-entropy over all items; 'bce': sampled negatives with binary cross-entropy."""
    negatives: int = 1
    """Sampled negatives per position for 'bce'."""
    lr: float | None = None
    """Adam learning rate; None: the model config's `lr`."""
    weight_decay: float | None = None
    """Adam weight decay; None: the model config's `weight_decay`."""
    batch_size: int = 128
    """Users per step."""
    epochs: int = 200
    """Maximum epochs (passes over all users)."""
    eval_every: int = 1
    """Epochs between validations."""
    patience: int = 20
    """Validations without a valid NDCG@10 gain before stopping."""
    eval_batch_size: int = 256
    """Users per scoring batch."""
    progress: bool = True
    """Show a tqdm bar over epochs."""
    model: dict = field(default_factory=dict)
    """SASRec hyper-parameters that differ from the ranking defaults (llmrec.collab.ranking.RANKING_SASREC)."""
