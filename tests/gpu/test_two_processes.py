"""A saved run evaluated by two processes on one device (its test users split between them, `predict_rows`) gives
the evaluation of one process: on one GPU (skipped without CUDA) and on the CPU. LC-Rec and CLLM4Rec rank through
`predict_rows`; the click methods' `evaluate` scores every row in each process (the serving scorer)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cuda_checks import data_overrides, overrides
from launch import launch_cpu, results
from llmrec import experiment
from llmrec.recommender import Recommender

HERE = Path(__file__).resolve().parent

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def evaluate_in_two_processes(method: str, tmp: Path, on_gpu: bool) -> tuple[dict, list[dict]]:
    """(one process's test metrics, each of two processes' result) of a fresh tiny run of `method`."""
    run_dir = tmp / method
    cfg = experiment.make_config(method, None, data_overrides(method, tmp) + overrides(method))
    experiment.train(cfg, run_dir)
    one = Recommender.from_pretrained(run_dir).evaluate("test")
    proc = launch_cpu(HERE / "two_process_eval.py", run_dir, tmp / "two", gpu=on_gpu, timeout=170)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return one, results(tmp / "two")


def check(one: dict, two: list[dict]) -> None:
    assert [r["num_processes"] for r in two] == [2, 2] and two[0]["test"] == two[1]["test"]
    assert two[0]["test"] == pytest.approx(one, abs=1e-6)  # the same rows, scored once each, in order


@cuda
@pytest.mark.parametrize("method", ["lcrec", "cllm4rec"])
def test_two_processes_on_one_gpu_evaluate_as_one(method, tmp_path):
    one, two = evaluate_in_two_processes(method, tmp_path, on_gpu=True)
    assert {r["device"] for r in two} == {"cuda:0"}  # both processes on the one GPU
    check(one, two)


@pytest.mark.parametrize("method", ["lcrec", "cllm4rec"])
def test_two_processes_on_the_cpu_evaluate_as_one(method, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    one, two = evaluate_in_two_processes(method, tmp_path, on_gpu=False)
    assert {r["device"] for r in two} == {"cpu"}
    check(one, two)
