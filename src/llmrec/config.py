"""Typed configs: dataclasses in, YAML out, `section.field=value` overrides from the command line.

Every experiment is one `ExperimentConfig`; each method reads the sections it needs and ignores the rest, so a
YAML file under configs/ names only what differs from the defaults below.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from llmrec.data.split_configs import HoldoutConfig, SequenceSplitConfig
from llmrec.errors import LlmrecError
from llmrec.methods.binllm.config import BinLLMConfig, EncoderConfig
from llmrec.methods.cllm4rec.config import CLLM4RecConfig
from llmrec.methods.collm.config import CoLLMConfig
from llmrec.methods.lcrec.config import LCRecConfig
from llmrec.methods.lightgcn_bpr.config import BPRConfig
from llmrec.methods.multvae.config import MultVAEConfig
from llmrec.methods.sasrec_rank.config import SeqRankConfig


@dataclass
class DataConfig:
    """Where the data comes from and how it is split."""

    dataset: str = "ml-100k"
    """Registered dataset name (see `llmrec data list`): ml-100k, ml-1m, ml-20m, collm, amazon, csv, recbole,
    lcrec, sequences; or a path to a data file."""
    path: str | None = None
    """File or directory for sources that read the user's files: fills the source's file option (CoLLM zip, CSV,
    LC-Rec folder, sequence file: path; RecBole: inter; Amazon: reviews)."""
    options: dict = field(default_factory=dict)
    """Extra loader options (e.g. column mapping for csv, k-core for amazon), as `llmrec data list` shows them;
    on the command line `data.options.user=uid` or `"data.options={user: uid, item: mid}"`."""
    cuts: list | None = None
    """Global time cuts: [[train_from, train_to], [valid_from, valid_to], [test_from, test_to]] as 'YYYY-MM', or two
    interaction quantiles such as [0.8, 0.9]. None: quantiles [0.8, 0.9]. Ignored for ready-made splits (collm)."""
    threshold: float = 4.0
    """Label = 1 when rating >= threshold (ML: 4, Amazon-Book: 5). Click splits need ratings: implicit data (every
    rating equal) is refused there, and is all-positive for the sequence and holdout families."""
    max_history: int = 50
    """Positives kept per row as history (prompts use the last `llm.history_titles`)."""
    valid_small_fraction: float = 0.5
    """Share of valid rows used for early stopping (valid_small)."""
    warm_definition: typing.Literal["paper", "not_cold"] = "paper"
    """'paper' (user and item each > 3 train rows) or 'not_cold' (both seen in train)."""
    domain: typing.Literal["movie", "book"] = "movie"
    """Noun in the prompts: 'movie' or 'book'."""
    cut_by: typing.Literal["global", "user"] = "global"
    """'global' (the papers): quantile cuts over all rows by time. 'user' (ours): the same quantiles within each
    user's time-ordered rows, so test users have train rows (the demo's split). Ignored for collm."""


@dataclass
class CollabConfig:
    """A classic collaborative model (MF, LightGCN, SASRec, DIN) trained pointwise with BCE."""

    model: typing.Literal["mf", "lightgcn", "sasrec", "din"] = "mf"
    """The classic model of an mf, lightgcn, sasrec or din run: the method name picks it, and this field records
    it (another value is refused). CoLLM's collaborative model is `collm.collab_model`."""
    overrides: dict = field(default_factory=dict)
    """Model hyper-parameters that differ from the model's paper defaults (e.g. {dim: 64})."""
    lr: float | None = None
    """Adam learning rate; None: the model's paper default."""
    weight_decay: float | None = None
    """Adam weight decay; None: the model's paper default."""
    batch_size: int = 1024
    """Training batch size."""
    epochs: int = 1000
    """Maximum epochs."""
    patience: int = 50
    """Epochs without a valid AUC gain before stopping (the official scripts use 50 to 100)."""
    valid_part: typing.Literal["valid_small", "valid"] = "valid_small"
    """Rows whose AUC selects the epoch: valid_small (the LLM methods' protocol) or the whole valid period (what
    the official MF and SASRec baseline scripts behind the published numbers read)."""


@dataclass
class LoraConfig:
    """LoRA adapters (peft) on the backbone; paper defaults."""

    r: int = 8
    """Rank."""
    alpha: int = 16
    """Scaling numerator (scale = alpha / r)."""
    dropout: float = 0.05
    """Dropout on the adapter input."""
    target_modules: list = field(default_factory=lambda: ["q_proj", "v_proj"])
    """Module names to adapt."""


@dataclass
class LLMConfig:
    """Backbone, prompt and score."""

    backbone: str = "smollm2-135m"
    """Registered name (smollm2-135m, gemma3-270m, tiny), a Hugging Face id, or a local directory."""
    dtype: typing.Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """auto (float32 on CPU, bfloat16 on CUDA), float32, bfloat16 or float16."""
    score: typing.Literal["yes_logit", "yes_no_softmax"] = "yes_logit"
    """'yes_logit': raw logit of "Yes" (official); 'yes_no_softmax': log-softmax over Yes/No."""
    history_titles: int = 10
    """History items shown in the prompt."""
    max_length: int = 512
    """Prompt token limit; the oldest history titles are dropped first when over it."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """LoRA settings."""
    gradient_checkpointing: bool = False
    """Recompute each decoder layer's activations in the backward pass instead of keeping them: less memory for
    about a third more compute; the same loss and gradients (every LLM method: click stages, LC-Rec, CLLM4Rec)."""
    fsdp: bool = False
    """Shard weights, gradients and AdamW states over the processes with FSDP 2 (each decoder layer its own unit),
    for a full fine-tuning too large for one device: LC-Rec's paper recipe at 7B (`lcrec.finetune=full` only; the
    LoRA methods fit one GPU at 7B and are refused in one line). On whenever `accelerate launch` runs with
    configs/accelerate/fsdp.yaml; true shards any multi-process launch (CPU/gloo too). docs/gpu.md, "Sharding"."""


@dataclass
class StageConfig:
    """One LoRA tuning stage (mirrors llmrec.llm.train.TrainConfig's main fields)."""

    lr: float = 1e-3
    """Peak learning rate (AdamW, warm-up then cosine, see `schedule`)."""
    weight_decay: float = 1e-3
    """AdamW weight decay."""
    batch_size: int = 16
    """Samples per optimizer step (before accumulation)."""
    grad_accum_steps: int = 1
    """Gradient accumulation steps."""
    max_samples: int | None = None
    """Sample budget for the stage (None: `epochs` full passes)."""
    epochs: float = 1.0
    """Passes over the train rows when max_samples is None."""
    warmup_ratio: float = 0.05
    """Share of steps used for linear warm-up ('cosine' schedule)."""
    schedule: typing.Literal["cosine", "official"] = "cosine"
    """'cosine' (ours, as the papers describe it): linear warm-up over `warmup_ratio` of the planned steps, once,
    then cosine decay to `min_lr` at the last planned step. 'official' (the BinLLM / CoLLM code, what produced the
    published numbers): a 200-step warm-up from 1e-5 that restarts every 50-step "epoch" (so it reaches about a
    quarter of `lr` four times), then cosine from `lr` toward `min_lr` over 10,000 steps
    (llmrec.llm.train.OFFICIAL_SCHEDULE)."""
    min_lr: float | None = None
    """Floor of the cosine decay; None: 0 with 'cosine', 8e-5 (the official configs) with 'official'."""
    eval_every: int = 50
    """Optimizer steps between evaluations on valid_small."""
    eval_rows: int | None = None
    """valid_small rows used for evaluation (None: all; a fixed random subset when set; 0: no evaluation, the
    final state is kept)."""
    patience: int = 20
    """Evaluations without valid AUC gain before stopping."""
    teacher_weight: float = 0.0
    """Ours (docs/methods/binllm.md, "Departures"): the BCE target of a training prompt becomes
    (1 - w) * label + w * p, where p is the method's own collaborative model's click probability for the row
    (BinLLM: its encoder, from the very codes the prompt carries; CoLLM: its collaborative model), Platt-calibrated
    on the train rows. Each prompt then carries the teacher's graded judgement, not one noisy bit. 0 (the papers):
    the label alone. TALLRec and ICL have no collaborative model and refuse w > 0."""


@dataclass
class EvalConfig:
    """Test evaluation."""

    test_rows: int | None = None
    """Score a fixed random subset of test rows (None: all)."""
    batch_size: int = 32
    """Scoring batch size."""
    prefix_cache: bool = True
    """Encode a prompt prefix shared by several rows (a user's rows with the same history) once and reuse its
    key/value cache (llmrec.llm.scoring.ScoringConfig.prefix_cache); equal to scoring each prompt whole within
    1e-4 in fp32. Off: every prompt whole."""


@dataclass
class ExperimentConfig:
    """One experiment: a method on a dataset. Sections a method does not use are ignored."""

    method: str = "binllm"
    """A registered method (llmrec.methods.registry): click (popularity, mf ... collm), sequence
    (popularity-rank, sasrec-rank, lcrec) or holdout (popularity-holdout, multvae, lightgcn-bpr, cllm4rec)."""
    seed: int = 2023
    """Drives splits, sampling and initialisation for every method and split (the holdout split's shuffles,
    Mult-VAE, LightGCN-BPR, LC-Rec and CLLM4Rec included): no method has a seed of its own."""
    stage1_from: str | None = None
    """A finished TALLRec run directory whose LoRA adapter stands in for stage 1 (BinLLM two-step, CoLLM), so
    one text-only tuning serves several methods, as in the papers."""
    report_to: list | str = field(default_factory=list)
    """Experiment trackers that follow training, as Hugging Face's `report_to`: a list (or one name) of
    tensorboard, wandb, mlflow, 'all' (every one of those installed) or 'none'. Empty (default): nothing is
    logged. Logs go to RUN/tracking/, so a resumed run appends there; what each method logs: llmrec.tracking.
    Changing it does not change results, so a run may be resumed with another value."""
    data: DataConfig = field(default_factory=DataConfig)
    collab: CollabConfig = field(default_factory=CollabConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """BinLLM's text-like encoding module (binllm, binmf)."""
    llm: LLMConfig = field(default_factory=LLMConfig)
    stage1: StageConfig = field(default_factory=StageConfig)
    """Text-only LoRA stage (TALLRec; stage 1 of BinLLM and CoLLM)."""
    stage2: StageConfig = field(default_factory=lambda: StageConfig(lr=1e-4, batch_size=4))
    """Stage with collaborative information (BinLLM codes in the prompt / CoLLM mapping MLP)."""
    binllm: BinLLMConfig = field(default_factory=BinLLMConfig)
    collm: CoLLMConfig = field(default_factory=CoLLMConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # Ranking families (see llmrec.experiment): each section overrides the method's own config dataclass.
    sequence: SequenceSplitConfig = field(default_factory=SequenceSplitConfig)
    """Leave-one-out split (the sequence family)."""
    holdout: HoldoutConfig = field(default_factory=HoldoutConfig)
    """Per-user holdout split (the holdout family)."""
    seqrank: SeqRankConfig = field(default_factory=SeqRankConfig)
    """SASRec trained for next-item ranking (sasrec-rank)."""
    lcrec: LCRecConfig = field(default_factory=LCRecConfig)
    """LC-Rec (lcrec; every sequence method reads its `exclude_seen` rule and test users)."""
    multvae: MultVAEConfig = field(default_factory=MultVAEConfig)
    """Mult-VAE (multvae)."""
    bpr: BPRConfig = field(default_factory=BPRConfig)
    """LightGCN with BPR (lightgcn-bpr)."""
    cllm4rec: CLLM4RecConfig = field(default_factory=CLLM4RecConfig)
    """CLLM4Rec (cllm4rec)."""

    def __post_init__(self):
        names = self.report_to.split(",") if isinstance(self.report_to, str) else self.report_to
        names = [str(n).strip() for n in names if str(n).strip()]
        unknown = [n for n in names if n not in TRACKERS + ("all", "none")]
        if unknown:
            raise LlmrecError(f"report_to: unknown tracker {unknown[0]!r}; expected {', '.join(TRACKERS)}, "
                              "all or none")
        self.report_to = names


TRACKERS = ("tensorboard", "wandb", "mlflow")
"""Trackers `report_to` may name (through Accelerate; llmrec.tracking checks which are installed)."""


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


# -- ranges ------------------------------------------------------------------------------------------------------
# One table by field name, for every config dataclass read through `from_dict` (the sections above and the
# methods' own configs: RankingConfig, LCRecConfig, MultVAEConfig, ...), so `collab.epochs=-5` or
# `lcrec.batch_size=0` fail before a run directory exists instead of training nothing or crashing later.
# (low, low inclusive, high, high inclusive); None: unbounded. None values ("off", "all") are never checked.
_AT_LEAST_1 = (1, True, None, False)
_POSITIVE = (0, False, None, False)
_NON_NEGATIVE = (0, True, None, False)
_SHARE = (0, True, 1, False)  # [0, 1)
_FRACTION = (0, False, 1, True)  # (0, 1]
_UNIT = (0, True, 1, True)  # [0, 1]
RANGES = {
    "epochs": _POSITIVE, "batch_size": _AT_LEAST_1, "eval_batch_size": _AT_LEAST_1, "eval_every": _AT_LEAST_1,
    "patience": _AT_LEAST_1, "grad_accum_steps": _AT_LEAST_1, "max_samples": _AT_LEAST_1, "max_steps": _AT_LEAST_1,
    "test_rows": _AT_LEAST_1, "eval_rows": _NON_NEGATIVE, "valid_users": _AT_LEAST_1, "test_users": _AT_LEAST_1,
    "max_valid_users": _AT_LEAST_1, "eval_users_per_batch": _AT_LEAST_1, "num_beams": _AT_LEAST_1,
    "negatives": _AT_LEAST_1, "k": _AT_LEAST_1, "r": _AT_LEAST_1, "lora_r": _AT_LEAST_1, "dim": _AT_LEAST_1,
    "hidden": _AT_LEAST_1, "latent": _AT_LEAST_1, "layers": _NON_NEGATIVE, "beta_every": _AT_LEAST_1,
    "max_length": _AT_LEAST_1, "max_history": _NON_NEGATIVE, "history_titles": _NON_NEGATIVE,
    "max_text_tokens": _AT_LEAST_1, "max_prompt_items": _AT_LEAST_1, "max_doc_items": _AT_LEAST_1,
    "max_content_docs": _AT_LEAST_1, "lr": _POSITIVE, "min_lr": _NON_NEGATIVE, "weight_decay": _NON_NEGATIVE,
    "reg": _NON_NEGATIVE, "lambda_reg": _NON_NEGATIVE, "beta_cap": _NON_NEGATIVE, "beta_step": _NON_NEGATIVE,
    "alpha": _POSITIVE, "lora_alpha": _POSITIVE, "init_std": _POSITIVE, "dropout": _SHARE, "lora_dropout": _SHARE,
    "warmup_ratio": _SHARE, "heldout_ratio": _SHARE, "valid_small_fraction": _FRACTION, "teacher_weight": _UNIT,
}
_SUFFIX_RANGES = (("_epochs", _NON_NEGATIVE), ("_batch_size", _AT_LEAST_1), ("_lr", _POSITIVE))
"""Fields not named above by their ending: cllm4rec.content_epochs (0 skips the stage), pretrain_lr, ..."""


def check_range(name: str, value, where: str) -> None:
    """One line naming the field when a number is outside the range its name implies (see RANGES)."""
    rule = RANGES.get(name) or next((r for suffix, r in _SUFFIX_RANGES if name.endswith(suffix)), None)
    if rule is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    lo, lo_in, hi, hi_in = rule
    ok = (lo is None or value > lo or (lo_in and value == lo)) and (hi is None or value < hi or (hi_in and value == hi))
    if not ok:
        left = "" if lo is None else f"{'[' if lo_in else '('}{lo}"
        right = "" if hi is None else f"{hi}{']' if hi_in else ')'}"
        want = (f"in {left}, {right}" if lo is not None and hi is not None else
                f"{'>=' if lo_in else '>'} {lo}" if lo is not None else f"{'<=' if hi_in else '<'} {hi}")
        raise LlmrecError(f"{where}: must be {want}, got {value!r}")


def _at(where: str, key: str) -> str:
    """'FILE: section.field' / 'override ...: section.field': the field path after a leading 'source:'."""
    return f"{where} {key}" if where.endswith(":") else f"{where}.{key}"


def _coerce(value, tp, where: str, check: bool = True):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise LlmrecError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where, check=check)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where, check)
            except LlmrecError as exc:
                errors.append(str(exc))
        raise LlmrecError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise LlmrecError(f"{where}: expected one of {', '.join(map(str, typing.get_args(tp)))}, got {value!r}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise LlmrecError(f"{where}: expected true/false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise LlmrecError(f"{where}: expected a number, got {value!r}")
        try:
            number = float(value) if tp is float else int(value)
        except ValueError:
            raise LlmrecError(f"{where}: expected {tp.__name__}, got {value!r}") from None
        if tp is int and isinstance(value, float) and value != int(value):
            raise LlmrecError(f"{where}: expected an integer, got {value!r}")
        if tp is float and number != number:
            raise LlmrecError(f"{where}: expected a number, got {value!r}")
        return number
    if tp is str:
        if not isinstance(value, (str, int, float)):
            raise LlmrecError(f"{where}: expected text, got {value!r}")
        return str(value)
    if tp in (list, dict) or origin in (list, dict):
        base = origin or tp
        if not isinstance(value, base):
            raise LlmrecError(f"{where}: expected a {base.__name__}, got {value!r}")
        return value
    return value


def from_dict(cls, data: dict | None, where: str = "config", check: bool = True):
    """Build dataclass `cls` from a (partial) dict; unknown keys, wrong types and (with `check`) numbers out of
    range (RANGES) give one clear line naming `where` and the field."""
    data = data or {}
    if not isinstance(data, dict):
        raise LlmrecError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names, key=str)
    if unknown:
        raise LlmrecError(f"{where}: unknown field(s) {', '.join(map(str, unknown))} "
                          f"(known: {', '.join(sorted(names))})")
    defaults = {f.name: f.default_factory() for f in dataclasses.fields(cls)
                if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(hints[f.name])}
    kwargs = {}
    for k, v in data.items():
        if k in defaults and isinstance(v, dict):  # a partial section keeps the parent's defaults for the rest
            v = _merge_section(hints[k], to_dict(defaults[k]), v)
        kwargs[k] = _coerce(v, hints[k], _at(where, k), check)
        if check:
            check_range(k, kwargs[k], _at(where, k))
    try:
        obj = cls(**kwargs)
        if check and hasattr(obj, "validate"):  # a section's cross-field rules (LCRecConfig, CLLM4RecConfig)
            obj.validate()
        return obj
    except LlmrecError as exc:  # a class's own checks (__post_init__, validate) name the field but not the source
        raise LlmrecError(f"{where.rstrip(':')}: {exc}") from None


def _merge_section(cls, base: dict, given: dict) -> dict:
    """`given` over `base`, both a section `cls` as dicts: nested sections merge field by field; any other value,
    a free-form mapping such as `lcrec.tasks` included, is replaced whole (a config that names three tasks means
    those three, not those added to the defaults)."""
    hints = typing.get_type_hints(cls)
    out = dict(base)
    for k, v in given.items():
        nested = k in hints and dataclasses.is_dataclass(hints[k])
        out[k] = _merge_section(hints[k], out[k], v) if nested and isinstance(v, dict) and isinstance(
            out.get(k), dict) else v
    return out


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_overrides(items: list[str]) -> dict:
    """['llm.backbone=tiny', 'stage1.lr=3e-4'] -> nested dict, values parsed as YAML scalars."""
    out: dict = {}
    for item in items:
        out = _merge(out, parse_override(item))
    return out


def parse_override(item: str) -> dict:
    """'stage1.lr=3e-4' -> {'stage1': {'lr': 0.0003}}; a bad one is named in one line."""
    path, value = _override_path(item)
    return _set_path({}, path, value)


def _override_path(item: str) -> tuple[list[str], object]:
    """'stage1.lr=3e-4' -> (['stage1', 'lr'], 0.0003)."""
    key, sep, raw = item.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise LlmrecError(f"override {item!r}: expected section.field=value")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError as exc:
        raise LlmrecError(f"override {item!r}: not a valid value ({_yaml_problem(exc)})") from None
    return key.split("."), value


def _set_path(data: dict, path: list[str], value, cls=None) -> dict:
    """A copy of `data` (a section `cls` as a dict, when given) with the value at `path` set, mappings along the
    way copied (or made). A mapping given for a nested section merges into it field by field (`_merge_section`);
    any other value replaces what was there, so `lcrec.tasks={seqrec: 1}` sets the whole mix and
    `lcrec.tasks.seqrec=0` one task."""
    out = dict(data)
    hints = typing.get_type_hints(cls) if cls is not None and dataclasses.is_dataclass(cls) else {}
    tp = hints.get(path[0])
    section = tp if tp is not None and dataclasses.is_dataclass(tp) else None
    inner = out.get(path[0])
    if len(path) > 1:
        out[path[0]] = _set_path(inner if isinstance(inner, dict) else {}, path[1:], value, section)
    elif section is not None and isinstance(value, dict) and isinstance(inner, dict):
        out[path[0]] = _merge_section(section, inner, value)
    else:
        out[path[0]] = value
    return out


def _yaml_problem(exc: yaml.YAMLError) -> str:
    return str(getattr(exc, "problem", None) or str(exc).splitlines()[0])


SHIPPED_CONFIGS = Path(__file__).parent / "configs"
"""The configs installed with the package (the repository's configs/ links here)."""


def shipped_configs() -> list[str]:
    return sorted(p.stem for p in SHIPPED_CONFIGS.glob("*.yaml"))


def shipped_config(path: str | Path) -> Path:
    """`path` itself when it exists; else a shipped config of that name (`mf-ml100k`, `mf-ml100k.yaml` or
    `configs/mf-ml100k.yaml`), so the README's commands work from any folder."""
    path = Path(path)
    if path.exists():
        return path
    shipped = SHIPPED_CONFIGS / (path.name if path.suffix == ".yaml" else path.name + ".yaml")
    return shipped if shipped.exists() and path.parent in (Path("."), Path("configs")) else path


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping from a file; errors as 'FILE:LINE:COL: problem' (1-based, as editors count)."""
    path = shipped_config(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise LlmrecError(f"{path}: no such config file (shipped ones: {', '.join(shipped_configs())})") from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as exc:
        raise LlmrecError(f"{path}: cannot read the config file ({type(exc).__name__})") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise LlmrecError(f"{where}: not valid YAML: {_yaml_problem(exc)}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise LlmrecError(f"{path}: expected a mapping (section: fields) at the top level, "
                          f"got {type(loaded).__name__}")
    return loaded


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, base: dict | None = None,
                cls=ExperimentConfig, check: bool = True):
    """Defaults <- `base` dict <- YAML file <- command-line overrides. A problem is blamed on its source: the
    file (with the field path) or the override text. `check=False` skips the ranges (reading saved runs)."""
    data = dict(base or {})
    where = "config:"
    if path is not None:
        where = f"{path}:"
        data = _merge(data, read_yaml(path))
    cfg = from_dict(cls, data, where, check)
    data = to_dict(cfg)  # overrides edit the resolved config: defaults and file included
    failing: list[tuple[str, LlmrecError]] = []  # the overrides since which every state has failed, and why
    for item in overrides or []:  # one at a time, so that a problem is blamed on the override that made it
        data = _set_path(data, *_override_path(item), cls=cls)
        try:
            cfg = from_dict(cls, data, f"override {item!r}:", check)
            failing = []
        except LlmrecError as exc:
            failing.append((item, exc))
    if failing:  # a later override may settle an earlier one's cross-field check (encoder=mean, then lora=false)
        def why(item, exc):
            return str(exc).removeprefix(f"override {item!r}:")
        raise next(exc for item, exc in failing if why(item, exc) == why(*failing[-1]))
    return cfg


def save_config(cfg, path: str | Path) -> None:
    from llmrec.paths import atomic_file

    with atomic_file(path) as tmp:
        tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
