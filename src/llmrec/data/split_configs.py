"""The split config sections of the ranking families (`sequence`, `holdout`): plain dataclasses, so the experiment
config can type them without loading the data layer."""
from __future__ import annotations

from dataclasses import dataclass

from llmrec.errors import LlmrecError


@dataclass
class SequenceSplitConfig:
    """How a leave-one-out split is made (its fields are `sequence_split`'s keyword arguments)."""

    max_length: int | None = 50
    """Keep the last this many train items per user (None: all)."""
    min_interactions: int = 3
    """Users with fewer interactions are dropped (at least 3: one train item, valid, test)."""
    positive_threshold: float | None = None
    """Use only interactions with rating >= this (None: all)."""

    def __post_init__(self):
        if self.min_interactions < 3:
            raise LlmrecError(f"min_interactions must be >= 3 (train, valid, test), got {self.min_interactions}")
        if self.max_length is not None and self.max_length < 1:
            raise LlmrecError(f"max_length must be >= 1 or None, got {self.max_length}")
