"""bench/gpu_check.py in its CPU mode (`--dry`: tiny stand-in models, every section in seconds): one report with
every section, none failed or skipped. The GPU numbers themselves only exist after a run on a GPU."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # `bench` is a top-level folder of the repository, not an installed package

from bench import gpu_check  # noqa: E402


def test_dry_run_writes_every_section(tmp_path):
    out = tmp_path / "report" / "gpu_report.md"
    assert gpu_check.main(["--dry", "--out", str(out)]) == 0
    text = out.read_text()
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert headings == list(gpu_check.SECTIONS)
    assert "Tiny mode: the numbers mean nothing" in text
    assert "failed" not in text and "skipped" not in text, text
    assert "tests/gpu/test_cuda_methods.py" in text  # the CUDA tests were collected
    for name in gpu_check.Sizes.tiny().models:  # both sizes measured: training, scoring, beam search
        assert sum(line.startswith(f"| {name} |") for line in text.splitlines()) == 2, name
    assert "**BinLLM** | **total on one GPU**" in text and "**CoLLM** | **total on one GPU**" in text


def test_recipes_dry_run_benchmarks_both_pipelines_with_their_baselines(tmp_path, monkeypatch):
    from bench import gpu_recipes

    monkeypatch.setenv("LLMREC_HOME", str(tmp_path / "home"))
    out = tmp_path / "recipes.md"
    assert gpu_recipes.main(["--dry", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.count(": exit 0, ") == len(gpu_recipes.RECIPES) == 2, text
    for method in ("popularity-rank", "sasrec-rank", "lcrec", "popularity-holdout", "multvae", "cllm4rec-no-llm",
                   "cllm4rec"):
        assert sum(line.startswith(f"| {method} |") for line in text.splitlines()) == 1, method
    assert "--config configs/lcrec-ml100k.yaml" in text and "--config configs/cllm4rec-ml100k.yaml" in text


def test_a_failing_or_late_recipe_is_reported_and_the_others_still_run(tmp_path, monkeypatch):
    from bench import gpu_recipes

    broken = gpu_recipes.Recipe("lcrec", "configs/no-such.yaml", 60)
    monkeypatch.setattr(gpu_recipes, "RECIPES", {"Broken": broken, "Late": broken})
    out = tmp_path / "recipes.md"
    assert gpu_recipes.main(["--out", str(out), "--deadline", "11"]) == 0  # the first leaves < 10 s
    text = out.read_text()
    assert "### Broken" in text and ": exit 2, " in text and "no-such.yaml" in text, text
    assert "### Late" in text and "skipped:" in text.split("### Late")[1], text
