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


@dataclass
class HoldoutConfig:
    """How a holdout split is made: the experiment's `holdout` section. The per-user shuffles are seeded by the
    experiment's `seed` (`HoldoutSplitConfig` adds it), as every method's randomness is."""

    threshold: float = 3.0
    """Keep interactions with rating strictly above this (CLLM4Rec: > 3)."""
    min_count: int = 5
    """k-core: users and items need at least this many kept interactions (repeated until stable); 1 = no filter."""
    fractions: tuple = (0.8, 0.1, 0.1)
    """Per-user shares of train, valid and test."""

    def __post_init__(self):
        self.fractions = tuple(float(f) for f in self.fractions)
        if len(self.fractions) != 3 or min(self.fractions) < 0 or abs(sum(self.fractions) - 1) > 1e-6:
            raise LlmrecError(f"holdout fractions must be three non-negative shares summing to 1, "
                              f"got {self.fractions}")
        if self.fractions[0] <= 0:
            raise LlmrecError(f"holdout fractions: the train share must be > 0, got {self.fractions}")
        if self.min_count < 1:
            raise LlmrecError(f"holdout min_count must be >= 1, got {self.min_count}")
