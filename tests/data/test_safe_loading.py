"""No code runs from a data file: the CoLLM pickles go through an allow-listed unpickler."""
from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np
import pandas as pd
import pytest

from llmrec.cli import main
from llmrec.data.collm import load_collm
from llmrec.data.safe_pickle import read_frame_pickle
from llmrec.errors import LlmrecError

PARTS = ("train", "valid", "valid_small", "test")


def paper_frame(n=6, seed=0):
    """A frame like the papers' `*_ood2.pkl`: his a 0-led array or list, his_title a list of str."""
    rng = np.random.default_rng(seed)
    iid = rng.integers(1, 9, n)
    return pd.DataFrame({
        "uid": np.arange(1, n + 1), "iid": iid, "label": rng.integers(0, 2, n),
        "timestamp": 978_307_200 + np.arange(n) * 60,
        "his": [np.array([0, *iid[:k]]) if k % 2 else [0, *iid[:k].tolist()] for k in range(n)],
        "title": [f"Item {i}" for i in iid],
        "his_title": [["pad", *(f"Item {i}" for i in iid[:k])] for k in range(n)],
        "flag": rng.random(n),
    })


def write_parts(folder, payload=None, protocol=pickle.DEFAULT_PROTOCOL):
    """The four parts in `folder`; `payload` (any object) replaces the test part."""
    folder.mkdir(parents=True, exist_ok=True)
    for p in PARTS:
        obj = payload if (p == "test" and payload is not None) else paper_frame(seed=PARTS.index(p))
        (folder / f"{p}_ood2.pkl").write_bytes(pickle.dumps(obj, protocol=protocol))
    return folder


class MakesFile:
    """Unpickling this would create `path` (open(path, 'w'))."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


class RunsShell:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


@pytest.mark.parametrize("payload", [MakesFile, RunsShell])
def test_malicious_pickle_runs_nothing(tmp_path, capsys, payload):
    marker = tmp_path / "pwned"
    folder = write_parts(tmp_path / "collm", payload(marker))
    with pytest.raises(LlmrecError) as err:
        load_collm(folder)
    assert not marker.exists()
    message = str(err.value)
    assert "\n" not in message and "test_ood2.pkl" in message and "refused" in message
    assert ("io.open" if payload is MakesFile else ".system") in message

    assert main(["data", "info", str(folder)]) == 2
    assert main(["data", "info", "collm", "--path", str(folder)]) == 2
    assert not marker.exists()
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 2 and all(line.startswith("llmrec: error: ") for line in err_lines)


def test_malicious_member_in_zip(tmp_path):
    marker = tmp_path / "pwned"
    folder = write_parts(tmp_path / "ml-1m", MakesFile(marker))
    archive = tmp_path / "collm.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in folder.iterdir():
            z.write(f, f"ml-1m/{f.name}")
    with pytest.raises(LlmrecError, match=r"collm\.zip:ml-1m/test_ood2\.pkl: refused"):
        load_collm(archive)
    assert not marker.exists()


def test_refuses_non_frame_globals():
    class Evil:
        def __reduce__(self):
            return eval, ("1",)

    for obj in (Evil(), pd.Series([1, 2]).to_frame().assign(f=[Evil(), Evil()])):
        with pytest.raises(LlmrecError, match="refused.*builtins.eval"):
            read_frame_pickle(pickle.dumps(obj), "x.pkl")
    with pytest.raises(LlmrecError, match="x.pkl: expected a pandas DataFrame, found list"):
        read_frame_pickle(pickle.dumps([1, 2]), "x.pkl")


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_dataframe_pickles_still_load(protocol):
    df = paper_frame().assign(
        text=pd.Series(["a", None, "c", "d", "e", "f"], dtype="str"), obj=pd.Series(list("abcdef"), dtype=object),
        when=pd.to_datetime(np.arange(6), unit="s"), utc=pd.to_datetime(np.arange(6), unit="s", utc=True),
        ok=[True, False] * 3, f32=np.arange(6, dtype=np.float32))
    for variant in (df, df.set_index("uid"), df.iloc[2:], df.set_index(["uid", "iid"])):
        pd.testing.assert_frame_equal(read_frame_pickle(pickle.dumps(variant, protocol=protocol), "x"), variant)
        pd.testing.assert_frame_equal(read_frame_pickle(pickle.dumps(variant, protocol=protocol), "x"),
                                      pd.read_pickle(__import__("io").BytesIO(pickle.dumps(variant, protocol))))


def test_legitimate_folder_loads_one_level_down_not_deeper(tmp_path):
    write_parts(tmp_path / "top" / "ml-1m", protocol=4)
    split = load_collm(tmp_path / "top")  # the one sub-folder holding the parts
    assert len(split.test) == 6 and split.items["title"].str.startswith("Item").any()
    write_parts(tmp_path / "deep" / "a" / "b")
    with pytest.raises(LlmrecError, match="no \\*_ood2.pkl files in it or in a sub-folder one level down"):
        load_collm(tmp_path / "deep")
    write_parts(tmp_path / "top" / "other")
    with pytest.raises(LlmrecError, match="several folders \\(ml-1m, other\\)"):
        load_collm(tmp_path / "top")


def test_wrong_column_values_are_one_line(tmp_path):
    bad = paper_frame().assign(his=["x"] * 6)
    with pytest.raises(LlmrecError, match="test_ood2.pkl: unexpected column values"):
        load_collm(write_parts(tmp_path / "a", bad))
    huge = paper_frame().assign(iid=np.full(6, 10**15))
    with pytest.raises(LlmrecError, match="test_ood2.pkl: ids must lie in"):
        load_collm(write_parts(tmp_path / "b", huge))
