"""LC-Rec's official `<Name>.index.json` (keyed by raw item id "0".."N-1") is re-keyed, collisions resolved."""
from __future__ import annotations

import json

import numpy as np
import pytest

from llmrec.data.lcrec_format import keyed_by_raw_ids, read_lcrec_index
from llmrec.data.registry import load_dataset
from llmrec.errors import LlmrecError
from llmrec.methods.lcrec.recipe import index_from_file

# raw item ids 0..5; items 10 and 11 make the raw and the internal numbering differ (sorted: 0..5, 10, 11)
INTER = {"0": [0, 1, 2, 3, 10], "1": [2, 3, 4, 11], "2": [1, 0, 4, 3, 2, 5]}
RAW = ["0", "1", "2", "3", "4", "5", "10", "11"]


def official(folder, collide=True):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Toys.inter.json").write_text(json.dumps(INTER))
    index = {r: ["<a_1>", f"<b_{int(r) % 4}>", f"<c_{int(r)}>"] for r in RAW}
    if collide:  # two pairs of items share a full index, as in the official files
        index["5"] = index["4"]
        index["11"] = index["10"]
    (folder / "Toys.index.json").write_text(json.dumps(index))
    return folder / "Toys.index.json", index


def test_official_index_is_rekeyed_and_collisions_resolved(tmp_path):
    path, index = official(tmp_path / "d")
    ds = load_dataset(str(path.parent))  # a folder holding a *.inter.json is an LC-Rec folder
    assert ds.name == "lcrec-Toys" and ds.raw_item_ids == RAW
    assert keyed_by_raw_ids(json.loads(path.read_text()), ds.raw_item_ids, ds.n_items)
    with pytest.warns(UserWarning, match=r"Toys.index.json: 2 items share a full index with an earlier item"):
        got, report = index_from_file(path, ds.n_items, ds.raw_item_ids)
    assert got.collisions() == 0 and report["keys"] == "raw item ids" and report["resolved_deterministically"] == 2
    for k, raw in enumerate(RAW, start=1):
        if raw not in ("5", "11"):
            assert got.item_tokens(k) == index[raw]  # internal id k is raw item RAW[k - 1]
    # the later item of a pair moves to the next free last-level code under the same prefix
    assert got.item_tokens(RAW.index("5") + 1)[:2] == index["4"][:2]
    assert got.item_tokens(RAW.index("5") + 1) != index["4"]
    assert np.unique(got.codes[1:], axis=0).shape[0] == len(RAW)


def test_internal_keys_still_load_and_raw_keys_without_raw_ids_say_why(tmp_path):
    path, _ = official(tmp_path / "d", collide=False)
    ds = load_dataset(str(path.parent))
    ours = tmp_path / "ours.json"
    ours.write_text(json.dumps(read_lcrec_index(path.parent, ds)))  # keyed 1..8
    got, report = index_from_file(ours, ds.n_items, ds.raw_item_ids)
    assert report["keys"] == "internal item ids" and got.item_tokens(7) == ["<a_1>", "<b_2>", "<c_10>"]
    with pytest.raises(LlmrecError, match="keyed by raw item ids .* carries no raw item ids"):
        index_from_file(path, ds.n_items, None)
    missing = json.loads(path.read_text())
    del missing["3"]
    path.write_text(json.dumps(missing))
    with pytest.raises(LlmrecError, match=r"index.json: 1 of the dataset's items have no index \(first: raw id '3'\)"):
        index_from_file(path, ds.n_items, ds.raw_item_ids)
