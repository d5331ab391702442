"""The training commands written in the README and docs/gpu.md load: each `llmrec train METHOD --config FILE ...`
line's file and overrides give a valid config of that method (MODEL, DATA and run paths stand for the user's).
The paper-scale commands cannot run here (7B, GPUs); this catches an override that the configs no longer take."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from llmrec.experiment import make_config
from llmrec.methods import registry

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ("README.md", "docs/gpu.md")


def train_commands(text: str) -> list[list[str]]:
    """Every `llmrec train` command of the text's bash blocks, continuation lines joined, $VARIABLES expanded."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        variables: dict[str, str] = {}
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if not line or line.startswith("#"):
                continue
            if m := re.fullmatch(r'([A-Z_]+)="(.*)"', line):
                variables[m[1]] = m[2]
                continue
            for name, value in variables.items():
                line = line.replace(f"${name}", value)
            words = shlex.split(line)
            for i, w in enumerate(words[:-1]):
                if w == "train" and i > 0 and words[i - 1] == "llmrec":
                    found.append(words[i + 1:])
    return found


def parsed(args: list[str]) -> tuple[str, str | None, list[str]]:
    method, config, overrides, rest = args[0], None, [], iter(args[1:])
    for word in rest:
        if word == "--config":
            config = next(rest)
        elif word.startswith("--"):
            next(rest)  # --out RUN and the like
        elif "=" in word:
            overrides.append(word)
    return method, config, overrides


COMMANDS = [(doc, args) for doc in DOCUMENTS for args in train_commands((ROOT / doc).read_text())
            if not args[0].isupper()]  # not a template line (`llmrec train METHOD --config configs/METHOD-...`)


def test_the_commands_are_found():
    gpu = [args[0] for doc, args in COMMANDS if doc == "docs/gpu.md"]
    assert gpu == ["tallrec", "binllm", "collm", "lcrec"]
    assert sum(doc == "README.md" for doc, _ in COMMANDS) >= 15


@pytest.mark.parametrize("doc, args", COMMANDS, ids=[f"{d}:{' '.join(a[:3])}" for d, a in COMMANDS])
def test_documented_train_command_loads(doc, args):
    method, config, overrides = parsed(args)
    cfg = make_config(method, str(ROOT / config) if config else None, overrides)  # what `llmrec train` does
    assert cfg.method == registry.get(registry.get(method).runs_as).name, (doc, args)
