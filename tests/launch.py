"""Run a test script in several processes under `accelerate launch`, as a GPU node runs llmrec (on the CPU: gloo)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_cpu(script: Path, *args, processes: int = 2, config_file: Path | None = None, gpu: bool = False,
               timeout: float = 110) -> subprocess.CompletedProcess:
    """`script ARGS` in `processes` CPU processes of one torch thread each (gpu=True: on the GPUs instead);
    `config_file`: an Accelerate config (its launch mode and precision), else plain DDP in float32.

    `accelerate launch --cpu --num_processes 2` starts ONE process without MPI (accelerate 1.15), so this runs the
    multi-process launcher and forces the CPU through the environment."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    if not gpu:
        env["ACCELERATE_USE_CPU"] = "1"
    how = ["--config_file", str(config_file)] if config_file else \
        ["--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *how, "--num_processes", str(processes),
           "--main_process_port", str(free_port()), str(script), *map(str, args)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def results(prefix: Path, processes: int = 2) -> list[dict]:
    """What each process of a launched script wrote to `<prefix>.<rank>` (JSON), in rank order."""
    return [json.loads(Path(f"{prefix}.{r}").read_text()) for r in range(processes)]
