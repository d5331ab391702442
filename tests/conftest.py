"""Shared fixtures: an isolated cache root, a small synthetic click split with a planted signal, and the same
synthetic data as a CSV file."""
from __future__ import annotations

import pytest

from llmrec.data.splits import click_split
from synthetic import synthetic_dataset, write_ratings_csv


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test writes its caches into a temporary LLMREC_HOME (never ~/.cache)."""
    monkeypatch.setenv("LLMREC_HOME", str(tmp_path_factory.mktemp("llmrec_home")))


@pytest.fixture
def tiny_split():
    return click_split(synthetic_dataset(), cuts=(0.7, 0.85), threshold=4.0, max_history=20)


@pytest.fixture
def csv_data(tmp_path):
    """The synthetic dataset as ratings.csv (user_id, item_id, rating, timestamp, title): read it with CSV_OPTIONS."""
    return write_ratings_csv(tmp_path / "ratings.csv")
