"""Fixtures for CLLM4Rec / Mult-VAE tests: a private cache root (data: planted_data.py)."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def llmrec_home(tmp_path, monkeypatch):
    """Every test gets its own empty cache root."""
    home = tmp_path / "llmrec-home"
    monkeypatch.setenv("LLMREC_HOME", str(home))
    return home
