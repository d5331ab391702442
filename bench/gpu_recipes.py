"""The real pipelines on a GPU: LC-Rec and CLLM4Rec on ml-100k with the embedded SmolLM2-135M, each beside its
baselines, at the shipped configs; one markdown report with their test tables and wall times.

    bash bench/gpu_check.sh $OUT/recipes.md --recipes    # on the GPU, once `bench/gpu_bundle.py unpack` has run
    python -m bench.gpu_recipes --dry --out /tmp/r.md     # the wiring: tiny backbone, generated data, CPU

Each recipe is one `llmrec benchmark` subprocess (the commands of the README, same split, every test user), so the
GPU runs the pipelines the README measures on CPU (in bf16 autocast there): LC-Rec with popularity-rank and sasrec-rank
(HR@10, NDCG@10), CLLM4Rec with popularity-holdout, Mult-VAE and its no-LLM control (Recall@20, Recall@40,
NDCG@100). The only GPU override is a larger decoding batch. Nothing is downloaded: the GPU machine's llmrec home
holds the backbone wheel, the ml-100k wheel and LC-Rec's item index (`bench/gpu_bundle.py`), and the runs fail with
one line if one is missing. Under 8 minutes in all: each recipe gets its own budget within `--deadline`.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Recipe:
    methods: str
    """`llmrec benchmark --methods`."""
    config: str
    """The shipped config, relative to the repository."""
    budget: float
    """Seconds this recipe may take on the GPU."""
    gpu: list[str] = field(default_factory=list)
    """Overrides on the GPU (the config is the CPU's)."""
    tiny: list[str] = field(default_factory=list)
    """Overrides for `--dry`: a tiny backbone and budget, so the wiring runs on CPU in seconds."""


RECIPES = {
    "LC-Rec": Recipe(
        "popularity-rank,sasrec-rank,lcrec", "configs/lcrec-ml100k.yaml", 300,
        gpu=["lcrec.eval_batch_size=32"],
        tiny=["llm.backbone=tiny", "lcrec.text_encoder=backbone", "lcrec.max_steps=2", "lcrec.eval_every=2",
              "lcrec.batch_size=4", "lcrec.valid_users=4", "lcrec.test_users=6", "lcrec.num_beams=5",
              "lcrec.eval_batch_size=3", "seqrank.epochs=2", "seqrank.model={dim: 16, blocks: 1}",
              "lcrec.rqvae={levels: 3, codebook_size: 4, e_dim: 8, epochs: 10, batch_size: 32, eval_every: 5}"]),
    "CLLM4Rec": Recipe(
        "popularity-holdout,multvae,cllm4rec-no-llm,cllm4rec", "configs/cllm4rec-ml100k.yaml", 150,
        tiny=["llm.backbone=tiny", "cllm4rec.device=cpu", "cllm4rec.finetune_epochs=1", "cllm4rec.eval_every=2",
              "cllm4rec.finetune_batch_size=8", "cllm4rec.max_valid_users=10", "holdout.min_count=1",
              "multvae.hidden=32", "multvae.latent=8", "multvae.epochs=2"]),
}


def dry_data(folder: Path) -> list[str]:
    """Overrides that read a small generated dataset (`llmrec.data.synthetic`) as a CSV, for `--dry`."""
    from llmrec.data.synthetic import CSV_OPTIONS, write_ratings_csv

    return ["data.dataset=csv", f"data.path={write_ratings_csv(folder / 'ratings.csv')}", CSV_OPTIONS]


def run_recipe(name: str, recipe: Recipe, out: Path, extra: list[str], budget: float) -> list[str]:
    """Run one recipe's benchmark; its report lines (the command, exit code, time, and its table or the error)."""
    cmd = [sys.executable, "-m", "llmrec.cli", "benchmark", "--methods", recipe.methods, "--config", recipe.config,
           "--out", str(out), *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, ["src", os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=budget)
        rc, tail = done.returncode, (done.stdout + done.stderr).strip().splitlines()[-15:]
    except subprocess.TimeoutExpired:
        rc, tail = "timeout", [f"(stopped after {budget:.0f} s)"]
    seconds = time.perf_counter() - start
    shown = " ".join(["llmrec", *cmd[3:5], recipe.methods, *cmd[6:8], *extra])
    lines = [f"### {name}", "", f"`{shown}`: exit {rc}, {seconds:.0f} s wall.", ""]
    table = out / "table.md"
    if rc == 0 and table.is_file():
        return lines + table.read_text().strip().splitlines() + [""]
    return lines + ["```", *tail, "```", ""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "recipes_report.md"))
    ap.add_argument("--dry", action="store_true", help="tiny backbone, generated data, CPU: the wiring only")
    ap.add_argument("--deadline", type=float, default=450.0, help="seconds for all recipes (default 450)")
    args = ap.parse_args(argv)
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU (CPU)"
    lines = ["# llmrec on a GPU: LC-Rec and CLLM4Rec on ml-100k", "",
             f"Device: {device}; torch {torch.__version__}."
             + (" **Dry run: tiny backbone, generated data; the numbers mean nothing.**" if args.dry else ""), ""]
    end = time.monotonic() + args.deadline
    with tempfile.TemporaryDirectory() as tmp:
        data = dry_data(Path(tmp)) if args.dry else []
        for name, recipe in RECIPES.items():
            budget = min(recipe.budget, end - time.monotonic())
            if budget < 10:
                lines += [f"### {name}", "", f"skipped: {budget:.0f} s left", ""]
                continue
            extra = data + (recipe.tiny if args.dry else recipe.gpu)
            lines += run_recipe(name, recipe, Path(tmp) / name, extra, budget)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
