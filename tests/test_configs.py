"""Every YAML under configs/ parses into an ExperimentConfig and is headed by the command that runs it."""
from pathlib import Path

import pytest

from llmrec.config import load_config
from llmrec.methods.registry import METHODS

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


def test_there_is_a_config_per_method():
    methods = {load_config(p).method for p in CONFIGS}
    assert set(METHODS) <= methods


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_parses_and_names_its_command(path):
    cfg = load_config(path)
    assert cfg.method in METHODS
    first = path.read_text().splitlines()[0]
    assert first.startswith(f"# llmrec train {cfg.method} --config configs/{path.name}")
