"""Experiment tracking, as Hugging Face users know it (`report_to`): TensorBoard, W&B or MLflow through
Accelerate's trackers.

    tracker = start(["tensorboard"], run_dir / "tracking", run_name="binllm")
    fit(..., tracker=tracker.scope("stage1"))     # logs stage1/train_loss, stage1/lr, stage1/valid_auc, ...
    tracker.finish()

`llmrec.experiment.train` starts one per run from `ExperimentConfig.report_to` and hands it to the method's
recipe, which gives each stage its own tag prefix. With nothing to report a `Tracker` does nothing (and the
loops call it unconditionally), so tracking never changes what a run computes. Only the main process writes.
Logs live under RUN/tracking/ (TensorBoard events in tracking/tensorboard/; W&B's files in tracking/wandb/; MLflow
in tracking/mlflow.db, or mlruns/ with mlflow-skinny, unless MLFLOW_TRACKING_URI names a server), so a resumed run
appends to the same place; W&B and MLflow resume the same run through the id saved there. The run's config goes
in as hyper-parameters once, when the directory is new. W&B gets each prefix's step as its own metric
(`stage1/step`), since its own step may only grow; MLflow gets `@` spelled `_at_` (ndcg_at_10).

What the loops log (step = optimizer step for the LLM loop, epoch for the others; tags under their prefix):
- `llmrec.llm.train.fit` (TALLRec / BinLLM / CoLLM `stage1`, `stage2`; LC-Rec `sft`; CLLM4Rec `pretrain-content`,
  `pretrain-alternate`, `finetune`): train_loss, lr, samples_per_s, tokens_per_s every optimizer step;
  valid_<metric> at every evaluation;
- `llmrec.collab.trainer.fit` (`collab`, BinLLM's `encoder`): train_loss, lr, samples_per_s, valid_auc,
  valid_uauc every epoch;
- `llmrec.collab.ranking.fit_ranking` (`seqrank`): train_loss, lr, samples_per_s every epoch, valid_<metric>
  at evaluations;
- Mult-VAE (`multvae`): train_loss, kl, beta, lr, samples_per_s, valid_<metric>; LightGCN-BPR (`bpr`): train_loss,
  lr, samples_per_s every epoch, valid_<metric> at evaluations;
- the RQ-VAE indexer (`rqvae`, only when an index is trained, not read from the cache): loss, recon, lr,
  samples_per_s every epoch, collision_rate at evaluations;
- the run's final test metrics once, as test/<metric> at step 0.
Values that are not finite numbers are left out.
"""
from __future__ import annotations

import math
import numbers
import os
import re
import uuid
from pathlib import Path

from llmrec.config import TRACKERS as SUPPORTED
from llmrec.errors import LlmrecError


def installed() -> list[str]:
    """The supported trackers whose package is installed (TensorBoard: the `track` extra)."""
    from accelerate.tracking import get_available_trackers

    available = {str(t) for t in get_available_trackers()}
    return [name for name in SUPPORTED if name in available]


def resolve(report_to: list[str] | str | None) -> list[str]:
    """The trackers to start: 'all' -> every installed one, 'none' -> none; one line naming an unknown or
    not-installed tracker (checked before a run directory is made)."""
    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    if "none" in names:
        if len(names) > 1:
            raise LlmrecError(f"report_to: 'none' cannot be combined with other trackers ({', '.join(names)})")
        return []
    unknown = [n for n in names if n not in SUPPORTED + ("all",)]
    if unknown:
        raise LlmrecError(f"report_to: unknown tracker {unknown[0]!r}; expected {', '.join(SUPPORTED)}, all or none")
    if not names:
        return []
    have = installed()
    if "all" in names:
        return have
    missing = [n for n in names if n not in have]
    if missing:
        hint = "pip install 'llmrec[track]'" if missing[0] == "tensorboard" else f"pip install {missing[0]}"
        raise LlmrecError(f"report_to: {missing[0]} is not installed ({hint})")
    return list(dict.fromkeys(names))


class Tracker:
    """Scalars to zero or more Accelerate trackers under a tag prefix; without trackers every call is a no-op."""

    def __init__(self, backends: list | None = None, prefix: str = ""):
        self._backends = list(backends or [])
        self.prefix = prefix

    @property
    def active(self) -> bool:
        return bool(self._backends)

    def scope(self, prefix: str) -> "Tracker":
        """The same trackers with tags under `prefix/` (nested: 'a/b/')."""
        return Tracker(self._backends, f"{self.prefix}{prefix}/" if prefix else self.prefix)

    def with_backend(self, backend) -> "Tracker":
        """These trackers and one more (anything with log(values, step) and finish(), e.g. llmrec.runs.RunLog)."""
        return Tracker(self._backends + [backend], self.prefix)

    def log(self, values: dict, step: int) -> None:
        """Log the finite numbers of `values` (others are skipped) at `step`, each tag under the prefix."""
        if not self._backends:
            return
        clean = {f"{self.prefix}{k}": float(v) for k, v in values.items()
                 if isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))}
        if clean:
            for backend in self._backends:
                backend.log(clean, step=int(step))

    def finish(self) -> None:
        """Flush and close every tracker (once; a finished Tracker logs nothing more)."""
        backends, self._backends = self._backends, []
        for backend in backends:
            backend.finish()


def scoped(tracker: Tracker | None, prefix: str) -> Tracker:
    """`tracker.scope(prefix)`, or a no-op Tracker for None: what a loop's `tracker=None` default becomes."""
    return tracker.scope(prefix) if tracker is not None else Tracker()


def start(report_to: list[str] | str | None, log_dir: str | Path, run_name: str = "llmrec",
          config: dict | None = None) -> Tracker:
    """Start the trackers `report_to` names, logging under `log_dir` (created); a no-op Tracker when there are
    none or on a process other than the main one. `config` (nested dict) is stored as the run's hyper-parameters
    when the log directory is new."""
    names = resolve(report_to)
    if not names:
        return Tracker()
    from accelerate import PartialState
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    if not PartialState().is_main_process:
        return Tracker()
    log_dir = Path(log_dir)
    fresh = not log_dir.exists()
    log_dir.mkdir(parents=True, exist_ok=True)
    backends = []
    for name in names:
        cls = LOGGER_TYPE_TO_CLASS[name]
        if name == "tensorboard":
            backend = cls("tensorboard", str(log_dir))  # events in log_dir/tensorboard/
        elif name == "wandb":
            backend = cls(os.environ.get("WANDB_PROJECT", "llmrec"), dir=str(log_dir), name=run_name,
                          id=_saved_id(log_dir / "wandb_id", lambda: uuid.uuid4().hex[:12]), resume="allow")
        else:
            backend = _mlflow(cls, log_dir, run_name)
        backend.start()
        if name == "mlflow":
            (log_dir / "mlflow_run_id").write_text(backend.active_run.info.run_id)
        if fresh and config:
            backend.store_init_configuration(_flat(config))
        backends.append(_StepPerStage(backend) if name == "wandb" else _PlainNames(backend) if name == "mlflow"
                        else backend)
    return Tracker(backends)


class _StepPerStage:
    """W&B keeps one step per run that may only grow (it drops anything logged at an earlier step), while each
    llmrec stage counts its own steps from 1 and the test metrics sit at 0: each prefix gets its own step metric
    (`stage1/step`, W&B's define_metric) and W&B's step just counts the calls."""

    def __init__(self, backend):
        self.backend, self.defined = backend, set()

    def log(self, values: dict, step: int) -> None:
        groups = {k.rpartition("/")[0] for k in values}
        for group in sorted(groups - self.defined):
            if group:
                self.backend.run.define_metric(f"{group}/step")
                self.backend.run.define_metric(f"{group}/*", step_metric=f"{group}/step")
            self.defined.add(group)
        self.backend.log({**values, **{f"{g}/step" if g else "step": step for g in groups}})

    def finish(self) -> None:
        self.backend.finish()


class _PlainNames:
    """MLflow refuses metric names outside letters, digits and `_-. :/`: ndcg@10 is logged as ndcg_at_10."""

    def __init__(self, backend):
        self.backend = backend

    def log(self, values: dict, step: int) -> None:
        self.backend.log({re.sub(r"[^\w.\- :/]", "_", k.replace("@", "_at_")): v for k, v in values.items()},
                         step=step)

    def finish(self) -> None:
        self.backend.finish()


def _saved_id(path: Path, make) -> str:
    """The id kept in `path` (made and written on first use), so a resumed run continues the same remote run."""
    if not path.is_file():
        path.write_text(make())
    return path.read_text().strip()


def _mlflow(cls, log_dir: Path, run_name: str):
    """An MLflow tracker: the MLFLOW_TRACKING_URI server when set, else a store in the log directory (SQLite,
    mlflow.db, with the full mlflow; the file store mlruns/ with mlflow-skinny, which has no database driver);
    the run id saved by an earlier session is resumed."""
    import importlib.util

    import mlflow

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        if importlib.util.find_spec("sqlalchemy") is not None:
            mlflow.set_tracking_uri(f"sqlite:///{(log_dir / 'mlflow.db').resolve()}")
        else:
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow keeps it, in maintenance mode
            mlflow.set_tracking_uri((log_dir / "mlruns").resolve().as_uri())
    saved = log_dir / "mlflow_run_id"
    return cls(experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME", "llmrec"),
               logging_dir=str((log_dir / "mlflow-artifacts").resolve()),
               run_id=saved.read_text().strip() if saved.is_file() else None, run_name=run_name)


def _flat(config: dict, prefix: str = "") -> dict:
    """{'llm': {'lr': 1}} -> {'llm.lr': 1}; values other than numbers, text and booleans as their text."""
    out = {}
    for k, v in config.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, (bool, int, float, str)) or v is None else str(v)
    return out
