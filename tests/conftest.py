"""Shared fixtures: an isolated cache root and a small synthetic click split with a planted signal."""
from __future__ import annotations

import pytest

from llmrec.data.splits import click_split
from synthetic import synthetic_dataset


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test writes its caches into a temporary LLMREC_HOME (never ~/.cache)."""
    monkeypatch.setenv("LLMREC_HOME", str(tmp_path_factory.mktemp("llmrec_home")))


@pytest.fixture
def tiny_split():
    return click_split(synthetic_dataset(), cuts=(0.7, 0.85), threshold=4.0, max_history=20)
