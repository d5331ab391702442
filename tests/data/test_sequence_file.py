"""Onboarding: sequence files, path rules, `data info` loader options, implicit data."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from llmrec.cli import main
from llmrec.data.info import describe
from llmrec.data.registry import load_dataset, resolve
from llmrec.data.sequences import read_sequences
from llmrec.errors import LlmrecError


def test_one_line_per_user_and_per_interaction_read_the_same(tmp_path):
    per_user = tmp_path / "Beauty.txt"
    per_user.write_text("1 5 3 9\n2 3\n\n# comment\n3 9 5\n")
    per_pair = tmp_path / "pairs.seq"
    per_pair.write_text("1 5\n2 3\n1 3\n3 9\n1 9\n3 5\n")
    a = read_sequences(per_user).sort_values(["user", "timestamp"]).reset_index(drop=True)
    b = read_sequences(per_pair).sort_values(["user", "timestamp"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert a["timestamp"].tolist() == [0, 1, 2, 0, 0, 1] and (a["rating"] == 1.0).all()
    ds = load_dataset("sequences", path=str(per_user))
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (4, 4, 6)
    assert ds.raw_item_ids == ["3", "5", "9"]
    info = describe(ds)
    assert info["feedback"].startswith("implicit") and info["positive_rate"] == 1.0


@pytest.mark.parametrize("text, message", [
    ("1 5 3\n2\n", r"s.seq: line 2: user '2' has no items"),
    ("", r"s.seq: no sequences"),
    ("# only a comment\n\n", r"s.seq: no sequences"),
])
def test_bad_sequence_files_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "s.seq"
    path.write_text(text)
    with pytest.raises(LlmrecError, match=message):
        load_dataset(str(path))
    path.write_bytes(b"1 2\n3 \xff\n")
    with pytest.raises(LlmrecError, match=r"s.seq: line 2: not UTF-8"):
        read_sequences(path)
    with pytest.raises(LlmrecError, match="no such file"):
        read_sequences(tmp_path / "missing.seq")


def test_path_rules(tmp_path):
    files = {"a.seq": "sequences", "a.sequences.txt": "sequences", "a.txt": "csv", "Toys.inter.json": "lcrec",
             "reviews.json": "amazon", "reviews.json.gz": "amazon", "r.inter": "recbole", "d.zip": "collm"}
    for name, kind in files.items():
        (tmp_path / name).write_text("x")
        assert resolve(str(tmp_path / name), {})[0] == kind, name
    (tmp_path / "lc").mkdir()
    (tmp_path / "lc" / "Toys.inter.json").write_text("{}")
    (tmp_path / "cl").mkdir()
    assert resolve(str(tmp_path / "lc"), {})[0] == "lcrec"
    assert resolve(str(tmp_path / "cl"), {})[0] == "collm"


def test_data_info_takes_the_loader_options(tmp_path, capsys):
    path = tmp_path / "r.csv"
    path.write_text("uid,mid,stars\n1,10,5\n2,10,3\n2,11,4\n")
    assert main(["data", "info", "csv", "--path", str(path), "user=uid", "item=mid", "rating=stars"]) == 0
    out = capsys.readouterr().out
    assert "interactions      3" in out and "rating_max        5" in out and "explicit" in out
    assert main(["data", "info", str(path), "data.options.user=uid", "item=mid"]) == 0
    assert "implicit" in capsys.readouterr().out  # no rating column: every row a positive
    assert main(["data", "info", str(path), "user=uid", "itme=mid"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown option(s) itme; accepted: path, user, item" in err
    assert main(["data", "info", "csv", "--path", str(path), "=mid"]) == 2
    assert "expected loader options as key=value" in capsys.readouterr().err
    assert main(["data", "list"]) == 0
    listing = capsys.readouterr().out
    assert "sequences:" in listing and "options: path= user=user_id item=item_id" in listing


def test_data_info_path_goes_to_the_sources_file_option(tmp_path, capsys):
    inter = tmp_path / "x.inter"
    inter.write_text("user_id:token\titem_id:token\n1\t2\n1\t3\n")
    assert main(["data", "info", "recbole", "--path", str(inter)]) == 0
    assert "interactions      2" in capsys.readouterr().out
    lc = tmp_path / "lc"
    lc.mkdir()
    (lc / "Toys.inter.json").write_text(json.dumps({"0": [0, 1, 2], "1": [1, 2]}))
    assert main(["data", "info", str(lc)]) == 0
    assert "lcrec-Toys" in capsys.readouterr().out
