"""Damaged caches are noticed and rebuilt (or named), never read as data or blamed on the network."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings

import pytest

from llmrec.data import ml100k
from llmrec.data.download import download, sidecar
from llmrec.data.registry import load_dataset
from llmrec.errors import LlmrecError
from llmrec.paths import STALE_AFTER, atomic_dir, atomic_file, clean_stale
from test_ml100k import wheel  # noqa: F401 (a fixture: the fake recbole wheel and its downloads)


# -- download cache ---------------------------------------------------------------------------------------------

def test_truncated_download_cache_is_fetched_again(archive_server, llmrec_home):
    body = os.urandom(5000)
    archive_server.files["f.bin"] = body
    url = archive_server.server_address
    url = f"http://127.0.0.1:{url[1]}/x/f.bin"
    dest = llmrec_home / "raw" / "f.bin"
    with pytest.warns(UserWarning, match="no checksum pinned"):
        download(url, dest)
    assert json.loads(sidecar(dest).read_text())["size"] == 5000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        download(url, dest)  # intact: reused, nothing fetched
    assert archive_server.requests == ["f.bin"]
    dest.write_bytes(body[:1000])  # truncated after the fact (disk full, killed copy)
    with pytest.warns(UserWarning, match=r"f.bin: cached copy is damaged \(1000 bytes, 5000 when written\)"):
        download(url, dest)
    assert dest.read_bytes() == body and archive_server.requests == ["f.bin", "f.bin"]
    flipped = bytes([body[0] ^ 1]) + body[1:]
    dest.write_bytes(flipped)  # same size, other bytes
    with pytest.warns(UserWarning, match="sha256 differs from the recorded one"):
        download(url, dest)
    assert dest.read_bytes() == body


def test_truncated_wheel_is_fetched_again(wheel, llmrec_home):
    calls = wheel  # the fake wheel's downloads (test_ml100k's fixture)
    wheel = ml100k.fetch_wheel()
    body = wheel.read_bytes()  # the fake wheel, checked against its pinned sha256
    wheel.write_bytes(body[: len(body) // 2])
    with pytest.warns(UserWarning, match="cached copy is damaged"):
        assert ml100k.fetch_wheel().read_bytes() == body
    assert len(calls) == 2
    sidecar(wheel).unlink()  # a wheel from before sidecars: the pinned sha256 still catches damage
    wheel.write_bytes(body[:100])
    with pytest.warns(UserWarning, match="sha256 differs from the pinned one"):
        ml100k.fetch_wheel()
    assert len(calls) == 3


# -- processed-data cache ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncate_parquet", "empty_meta", "meta_list", "meta_counts"])
def test_damaged_processed_cache_is_rebuilt(tmp_path, llmrec_home, damage):
    path = tmp_path / "r.csv"
    path.write_text("user_id,item_id\n1,1\n1,2\n2,1\n")
    load_dataset("csv", path=str(path))
    (cache,) = (llmrec_home / "processed").iterdir()
    parquet, meta = cache / "interactions.parquet", cache / "meta.json"
    if damage == "truncate_parquet":
        parquet.write_bytes(parquet.read_bytes()[: parquet.stat().st_size // 2])
    elif damage == "empty_meta":
        meta.write_text("")
    elif damage == "meta_list":
        meta.write_text("[]")
    else:
        m = json.loads(meta.read_text())
        meta.write_text(json.dumps({**m, "raw_item_ids": m["raw_item_ids"][:1]}))
    with pytest.warns(UserWarning, match=r"(unreadable|inconsistent) cache.*rebuilding"):
        ds = load_dataset("csv", path=str(path))
    assert len(ds.interactions) == 3 and ds.raw_item_ids == ["1", "2"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_dataset("csv", path=str(path)).interactions) == 3  # rewritten intact


# -- temporaries of killed writers -------------------------------------------------------------------------------

def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _age(path, seconds):
    t = time.time() - seconds
    for root, dirs, files in os.walk(path) if path.is_dir() else [(path.parent, [], [path.name])]:
        for n in files + dirs:
            os.utime(os.path.join(root, n), (t, t))
    os.utime(path, (t, t))


def test_stale_temporaries_of_the_same_target_are_removed(tmp_path):
    target = tmp_path / "cache"
    dead, live = _dead_pid(), os.getppid()
    old_dead = tmp_path / f".cache.{dead}.abc123.tmp"
    fresh_dead = tmp_path / f".cache.{dead}.def456.tmp"
    old_live = tmp_path / f".cache.{live}.ghi789.tmp"
    legacy = tmp_path / ".cache.xyz_1.tmp"  # written before temporaries carried the pid
    sibling = tmp_path / f".cache.b.{dead}.abc.tmp"  # another target's ("cache.b")
    for d in (old_dead, fresh_dead, old_live, legacy, sibling):
        d.mkdir()
        (d / "part.parquet").write_bytes(b"half")
    for d in (old_dead, old_live, legacy, sibling):
        _age(d, STALE_AFTER + 60)
    with atomic_dir(target) as tmp:
        (tmp / "x").write_text("done")
    assert (target / "x").read_text() == "done"
    assert not old_dead.exists() and not legacy.exists()
    assert fresh_dead.exists()  # maybe a writer on another machine, still busy
    assert old_live.exists()  # its writer is alive here
    assert sibling.exists()
    stale_file = tmp_path / f".out.json.{dead}.q1w2e3.tmp"
    stale_file.write_text("{")
    _age(stale_file, STALE_AFTER + 1)
    with atomic_file(tmp_path / "out.json") as tmp:
        tmp.write_text("{}")
    assert not stale_file.exists() and (tmp_path / "out.json").read_text() == "{}"
    assert clean_stale(target) == []


def test_a_killed_build_leaves_a_temporary_that_the_next_build_removes(tmp_path):
    target = tmp_path / "built"
    code = ("import os, sys; from llmrec.paths import atomic_dir\n"
            f"with atomic_dir({str(target)!r}) as t:\n    (t / 'a').write_text('x'); os._exit(9)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 9
    (left,) = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    _age(left, STALE_AFTER + 5)
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["built"]


# -- converted backbones -----------------------------------------------------------------------------------------

def save_tiny(out):
    from llmrec.llm.backbones import tiny_backbone

    model, tok = tiny_backbone()
    model.save_pretrained(out)
    tok.save_pretrained(out)


def test_truncated_backbone_cache_is_rebuilt_and_named(tmp_path, llmrec_home, monkeypatch):
    from llmrec.llm import backbones

    converted = []

    def fake_convert(spec, gguf, out):
        converted.append(1)
        save_tiny(out)
        backbones.write_source_file(out, {"name": spec.name})

    monkeypatch.setattr(backbones, "_convert_gguf", fake_convert)
    monkeypatch.setattr(backbones, "_assemble_gguf", lambda spec, staging, out: out.write_bytes(b"gguf"))
    spec = backbones.EmbeddedBackbone("fake-llm", (), "m.gguf", "0")
    monkeypatch.setitem(backbones.EMBEDDED, "fake-llm", spec)
    out = backbones.backbone_dir("fake-llm")
    weights = out / "model.safetensors"
    assert backbones.cached_backbone_dir("fake-llm") == out
    weights.write_bytes(weights.read_bytes()[:1000])
    assert backbones.cached_backbone_dir("fake-llm") is None
    assert backbones.backbone_dir("fake-llm") == out and len(converted) == 2  # rebuilt
    assert backbones.load_backbone("fake-llm", device="cpu")[0] is not None
    # a cache from before sizes were recorded, or any model folder: the safetensors error becomes one line
    source = json.loads((out / backbones.SOURCE_FILE).read_text())
    (out / backbones.SOURCE_FILE).write_text(json.dumps({k: v for k, v in source.items() if k != "files"}))
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(LlmrecError) as err:
        backbones.load_backbone("fake-llm", device="cpu")
    assert "\n" not in str(err.value)
    assert f"{out}: damaged weights file" in str(err.value) and f"delete {out}" in str(err.value)
    mine = tmp_path / "my-model"
    save_tiny(mine)
    (mine / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(LlmrecError, match="my-model: damaged weights file .*download or save the model again"):
        backbones.load_backbone(str(mine), device="cpu")
