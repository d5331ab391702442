"""FSDP against DDP on CPU: LC-Rec's full fine-tuning of the embedded SmolLM2-135M on ml-100k, in 2 processes of 1
thread each (gloo), the same steps under each layout. Per process: the bytes of weights, gradients and AdamW states
it holds after the first optimizer step (counted from its own tensors: a shard's local part), its peak RSS, and the
mean step time; and whether the two runs agree (training loss, validation NLL, test HR@10 / NDCG@10).

    python -m bench.fsdp_cpu OUT [--steps 8]

Writes OUT/fsdp_cpu.md and the two run directories OUT/ddp, OUT/fsdp. A random item index (no MiniLM, no RQ-VAE):
this measures the layouts, not LC-Rec's quality. Both runs load the whole backbone in every process first, so peak
RSS carries that load for both; the held bytes are what sharding divides.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYOUTS = ("ddp", "fsdp")


def overrides(steps: int, layout: str) -> list[str]:
    """The shipped ml-100k config with the paper's full fine-tuning (its own learning rate for every weight, tied
    head, lr 5e-5), `steps` steps of 2 x 2 rows."""
    return ["lcrec.item_prior=none", "lcrec.new_token_head=tied", "lcrec.new_token_head_lr=null",
            "lcrec.new_token_lr=null", "lcrec.finetune=full", "lcrec.lr=5e-5", "lcrec.index=random", f"lcrec.max_steps={steps}",
            f"lcrec.eval_every={steps}", "lcrec.batch_size=2", "lcrec.valid_users=32", "lcrec.test_users=32",
            "lcrec.eval_batch_size=4", f"llm.fsdp={'true' if layout == 'fsdp' else 'false'}"]


def held_bytes(optimizer) -> dict:
    """Bytes of the optimizer's parameters, their gradients and its state tensors held by this process."""
    def local(t):
        t = t.to_local() if hasattr(t, "to_local") else t
        return t.numel() * t.element_size()

    params = [p for g in optimizer.param_groups for p in g["params"]]
    state = [v for p in params for v in optimizer.state.get(p, {}).values() if hasattr(v, "numel") and v.ndim > 0]
    return {"weights": sum(local(p) for p in params), "grads": sum(local(p.grad) for p in params if p.grad is not None),
            "adam": sum(local(v) for v in state)}


def child(out: str, layout: str, steps: int) -> None:
    """One process of a layout's run (under accelerate launch): train, then write what it held."""
    import torch

    from llmrec.config import load_config
    from llmrec.experiment import train
    from llmrec.llm.train import close_processes, make_accelerator

    acc = make_accelerator()
    held: dict = {}
    step = torch.optim.AdamW.step

    def counted(self, *args, **kw):  # after the first step the states exist and the gradients are still there
        result = step(self, *args, **kw)
        if not held:
            held.update(held_bytes(self))
        return result

    torch.optim.AdamW.step = counted
    cfg = load_config(ROOT / "configs" / "lcrec-ml100k.yaml", overrides(steps, layout))
    metrics = train(cfg, Path(out) / layout)
    row = {"layout": layout, "rank": acc.process_index, "processes": acc.num_processes, **held,
           "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
           "step_seconds": metrics["train_seconds"] / metrics["steps"], "steps": metrics["steps"],
           "valid_nll": metrics["valid"]["nll"], "train_loss": metrics["history"][-1]["train_loss"],
           "hr@10": metrics["test"]["hr@10"], "ndcg@10": metrics["test"]["ndcg@10"],
           "test_users": metrics["test"]["users"]}
    (Path(out) / f"{layout}.{acc.process_index}.json").write_text(json.dumps(row))
    close_processes()


def launch(out: Path, layout: str, steps: int) -> list[dict]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
           str(port), "-m", "bench.fsdp_cpu", "--child", layout, str(out), "--steps", str(steps)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{layout}: exit {done.returncode}\n{done.stderr[-3000:]}")
    return [json.loads((out / f"{layout}.{r}.json").read_text()) for r in (0, 1)]


def report(rows: dict[str, list[dict]], steps: int) -> str:
    from llmrec.report import markdown_table

    mb = 2 ** 20
    table = [{"layout": layout, "rank": r["rank"], "weights MB": round(r["weights"] / mb),
              "grads MB": round(r["grads"] / mb), "AdamW MB": round(r["adam"] / mb),
              "held MB": round((r["weights"] + r["grads"] + r["adam"]) / mb),
              "peak RSS MB": round(r["peak_rss"] / mb), "s / step": round(r["step_seconds"], 2)}
             for layout in LAYOUTS for r in rows[layout]]
    agree = [{"layout": layout, "train loss": round(rows[layout][0]["train_loss"], 5),
              "valid NLL": round(rows[layout][0]["valid_nll"], 5), "test HR@10": rows[layout][0]["hr@10"],
              "test NDCG@10": round(rows[layout][0]["ndcg@10"], 5), "test users": rows[layout][0]["test_users"]}
             for layout in LAYOUTS]
    held = {layout: sum(r["weights"] + r["grads"] + r["adam"] for r in rows[layout]) / 2 for layout in LAYOUTS}
    return "\n".join([
        f"LC-Rec full fine-tuning, SmolLM2-135M, ml-100k, random index; {steps} steps of 2 processes x 2 rows, "
        "1 torch thread each (gloo).", "", markdown_table(table), "", markdown_table(agree), "",
        f"Held per process, FSDP / DDP: {held['fsdp'] / held['ddp']:.3f}.", ""])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--child", choices=LAYOUTS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.out, args.child, args.steps)
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = {layout: launch(out, layout, args.steps) for layout in LAYOUTS}
    text = report(rows, args.steps)
    (out / "fsdp_cpu.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
