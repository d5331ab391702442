"""LC-Rec's processed JSON files as a dataset source."""
from __future__ import annotations

import json

import pytest

from llmrec.data.lcrec_format import load_lcrec, read_lcrec_index
from llmrec.data.registry import load_dataset
from llmrec.data.splits import sequence_split
from llmrec.errors import LlmrecError
from llmrec.methods.lcrec.vocab import ItemIndex

INTER = {"0": [0, 1, 2, 3], "1": [2, 3, 4], "2": [1, 0, 4, 3, 2]}
ITEMS = {"0": {"title": "Guitar strings.", "description": "Nickel <b>wound</b>"}, "1": {"title": "Capo"},
         "2": {"title": "Tuner", "description": ""}, "3": {"title": "Picks"}, "4": {"title": "Strap"}}


def _write(folder, name="Instruments", index=True):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.inter.json").write_text(json.dumps(INTER))
    (folder / f"{name}.item.json").write_text(json.dumps(ITEMS))
    if index:
        (folder / f"{name}.index.json").write_text(json.dumps(
            {str(i): [f"<a_{i % 2}>", f"<b_{i}>"] for i in range(5)}))
    return folder


def test_loads_sequences_in_file_order_and_splits_leave_one_out(tmp_path):
    ds = load_dataset("lcrec", path=str(_write(tmp_path / "d")))
    assert ds.n_users == 4 and ds.n_items == 6 and ds.name == "lcrec-Instruments"
    split = sequence_split(ds)
    raw_item = {k + 1: r for k, r in enumerate(ds.raw_item_ids)}
    by_user = {ds.raw_user_ids[u - 1]: row for u, row in zip(split.users["user_id"], split.users.itertuples())}
    for user, seq in INTER.items():
        row = by_user[user]
        assert [int(raw_item[i]) for i in row.train] == seq[:-2]
        assert int(raw_item[row.valid]) == seq[-2] and int(raw_item[row.test]) == seq[-1]
    titles = dict(zip(ds.items["item_id"].map(raw_item), ds.items["title"]))
    assert titles["0"] == "Guitar strings." and dict(zip(ds.items["item_id"].map(raw_item), ds.items["text"]))["0"] \
        == "Nickel <b>wound</b>"


def test_official_index_is_rekeyed_to_internal_ids(tmp_path):
    folder = _write(tmp_path / "d")
    ds = load_lcrec(folder / "Instruments.inter.json")
    index = ItemIndex.from_json(read_lcrec_index(folder, ds), n_items=ds.n_items)
    for k, raw in enumerate(ds.raw_item_ids, start=1):
        assert index.item_tokens(k) == [f"<a_{int(raw) % 2}>", f"<b_{raw}>"]


def test_bad_folders_and_files_are_one_line_errors(tmp_path):
    _write(tmp_path / "two", "A")
    _write(tmp_path / "two", "B")
    with pytest.raises(LlmrecError, match="exactly one"):
        load_lcrec(tmp_path / "two")
    assert load_lcrec(tmp_path / "two", dataset="B").n_items == 6
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "X.inter.json").write_text("{not json")
    with pytest.raises(LlmrecError, match="X.inter.json: not readable JSON"):
        load_lcrec(bad)
    with pytest.raises(LlmrecError, match="no such file"):
        read_lcrec_index(_write(tmp_path / "noidx", index=False), load_lcrec(tmp_path / "noidx"))
    with pytest.raises(LlmrecError, match="not an LC-Rec folder"):
        load_lcrec(tmp_path / "missing")


def test_user_texts_map_raw_ids_to_internal_ones(tmp_path):
    from llmrec.methods.lcrec.tasks import UserText

    folder = _write(tmp_path / "d")
    user_json = {"user_explicit_preference": {"2": ["likes tuning gear"]},
                 "user_vague_intention": {"train": {"2": {"querys": ["calm", "a clip-on tuner"], "item": 2,
                                                          "inters": [1, 0]}}, "test": {}}}
    (folder / "Instruments.user.json").write_text(json.dumps(user_json))
    ds = load_lcrec(folder)
    ut = UserText.for_dataset(folder / "Instruments.user.json", ds)
    u = ds.raw_user_ids.index("2") + 1
    item = {r: k + 1 for k, r in enumerate(ds.raw_item_ids)}
    assert ut.preferences == {u: ["likes tuning gear"]}
    assert ut.intentions[u] == {"user": "calm", "item": "a clip-on tuner", "target": item["2"],
                                "history": [item["1"], item["0"]]}
    user_json["user_vague_intention"]["train"]["2"]["item"] = 99
    (folder / "Instruments.user.json").write_text(json.dumps(user_json))
    with pytest.raises(LlmrecError, match="naming known items"):
        UserText.for_dataset(folder / "Instruments.user.json", ds)
