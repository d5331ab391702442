"""Every YAML under configs/ parses into an ExperimentConfig and is headed by the command that runs it."""
from pathlib import Path

import pytest

from llmrec.config import load_config
from llmrec.errors import LlmrecError
from llmrec.methods import registry

METHODS = registry.names()

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


def test_shipped_configs_are_found_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here: the installed package's are used
    for name in ("mf-ml100k", "mf-ml100k.yaml", "configs/mf-ml100k.yaml"):
        assert load_config(name).method == "mf"
    with pytest.raises(LlmrecError, match="no such config file .shipped ones: .*mf-ml100k"):
        load_config("nosuch-config")
    (tmp_path / "mine.yaml").write_text("method: sasrec\n")
    assert load_config("mine.yaml").method == "sasrec"  # a file of the user's comes first


def test_every_registered_method_has_a_recipe_and_a_family():
    for name in registry.names() + registry.names(variants=True):
        method = registry.get(name)
        assert method.family in registry.FAMILIES
        assert callable(method.module().train), name
        assert callable(method.module("recommender").load_recommender), name
