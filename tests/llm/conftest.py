"""Fixtures for the LLM layer: the tiny backbone and tokenizers of the three families, all built in-process."""
from __future__ import annotations

import os
import string
from pathlib import Path

import pytest

from llmrec.llm.backbones import load_backbone
from llmrec.llm.backbones import _TINY_TEXT

# The cache root as the user has it, read before tests/conftest.py points LLMREC_HOME at a temporary directory:
# the real embedded model is converted once into it and reused by later runs (the smoke test's only write).
REAL_HOME = Path(os.environ.get("LLMREC_HOME", Path.home() / ".cache" / "llmrec")).expanduser()


@pytest.fixture
def real_home(monkeypatch):
    monkeypatch.setenv("LLMREC_HOME", str(REAL_HOME))
    return REAL_HOME


MORE_TEXT = _TINY_TEXT + """\
Star Wars: Episode IV - A New Hope (1977), Fargo (1996), L.A. Confidential (1997), Pulp Fiction (1994).
"""


def _wrap(tok, **special):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tok, **special)


def gpt2_style_tokenizer():
    """GPT-2-style byte-level BPE: GPT-2's pre-tokenizer regex (digits grouped), no BOS, <|endoftext|> only."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(MORE_TEXT.splitlines() * 4, trainer=trainer)
    return _wrap(tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")


def sentencepiece_style_tokenizer(prepend_scheme: str = "always"):
    """SentencePiece-style BPE with '▁' for spaces and a BOS: prepend_scheme 'always' adds the start-of-text
    space to every encoded text (Llama-2 / Vicuna), 'never' does not (Gemma)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=prepend_scheme),
        pre_tokenizers.Digits(individual_digits=True)])
    # Llama-2's decoder; Gemma's is the same without the final strip of the start-of-text space
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    tok.decoder = decoders.Sequence(steps + ([decoders.Strip(" ", 1, 0)] if prepend_scheme == "always" else []))
    alphabet = [f"<0x{i:02X}>" for i in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=900, special_tokens=["<unk>", "<s>", "</s>", *alphabet],
                                  initial_alphabet=list(string.ascii_letters + string.digits), show_progress=False)
    tok.train_from_iterator(MORE_TEXT.splitlines() * 4, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return _wrap(tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from threads, and the test machine is shared: use one, then restore."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    return load_backbone("tiny")


@pytest.fixture(scope="module", params=["tiny", "gpt2", "sp_always", "sp_never"])
def any_tokenizer(request):
    if request.param == "tiny":
        return load_backbone("tiny")[1]
    if request.param == "gpt2":
        return gpt2_style_tokenizer()
    return sentencepiece_style_tokenizer("always" if request.param == "sp_always" else "never")
