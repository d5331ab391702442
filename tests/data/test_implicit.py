"""Implicit data (every rating equal, e.g. a file without ratings): all-positive for the sequence and holdout
families, refused with one line by the click split, which needs negatives; `data.path` fills the source's own file
option."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from llmrec.data.holdout import holdout_split
from llmrec.data.splits import click_split, sequence_split
from llmrec.errors import LlmrecError
from tests.data.conftest import synthetic_dataset


def implicit(ds):
    inter = ds.interactions.copy()
    inter["rating"] = np.float32(1.0)
    return dataclasses.replace(ds, interactions=inter)


def test_sequence_split_keeps_every_row_of_implicit_data():
    ds = implicit(synthetic_dataset())
    # a threshold above the only rating would drop every row of explicit data
    split = sequence_split(ds, positive_threshold=4.0, min_interactions=3)
    whole = sequence_split(ds, positive_threshold=None, min_interactions=3)
    assert len(split.users) == len(whole.users) > 0


def test_holdout_split_keeps_every_pair_of_implicit_data():
    ds = synthetic_dataset(n_rows=2000)
    split = holdout_split(implicit(ds), threshold=3.0, min_count=2)
    every_pair = holdout_split(ds, threshold=0.0, min_count=2)  # explicit ratings 1..5, all above 0
    above_three = holdout_split(ds, threshold=3.0, min_count=2)
    assert (split.n_users, split.n_items, len(split.train)) == \
        (every_pair.n_users, every_pair.n_items, len(every_pair.train))
    assert len(split.train) > 1.5 * len(above_three.train)


def test_click_split_refuses_implicit_data_in_one_line():
    with pytest.raises(LlmrecError, match="implicit data .*needs negatives") as exc:
        click_split(implicit(synthetic_dataset()))
    assert "\n" not in str(exc.value)


def test_click_split_names_the_threshold_field():
    with pytest.raises(LlmrecError, match=r"no row has rating >= 9.*set data.threshold"):
        click_split(synthetic_dataset(), threshold=9.0)


def test_data_path_fills_the_sources_file_option(tmp_path, monkeypatch):
    from llmrec import experiment

    calls = {}

    def fake(name, dataset_options=None, **kwargs):
        calls.update(dataset_options)
        raise LlmrecError("stop")

    monkeypatch.setattr(experiment, "get_click_split", fake)
    inter = tmp_path / "x.inter"
    inter.write_text("user_id:token\titem_id:token\n")
    cfg = experiment.make_config("mf", None, ["data.dataset=recbole", f"data.path={inter}"])
    with pytest.raises(LlmrecError, match="stop"):
        experiment.load_split(cfg)
    assert calls == {"inter": str(inter)}
