"""Every method is one registered `Method`: its name, family, config section, and the module that trains it on a
split into a run and turns a saved run into a recommender. `experiment`, `recommender`, `benchmark` and the CLI
read this table and nothing else, so adding a method is one `register(Method(...))` (docs/architecture.md).

The three families each have their own split and metrics (`Family`): click (CoLLM/BinLLM split; AUC, UAUC,
warm/cold), sequence (leave-one-out; full-ranking HR@K, NDCG@K) and holdout (per-user held-out items; Recall@K,
NDCG@K). Recipe modules are imported on first use, so naming a method never loads a backbone.

Methods of other packages join through the entry-point group `llmrec.methods` (each entry a `Method`), loaded
the first time the table is read; in a script or test, `register(Method(...))` does the same.

A recipe module (or any object) given as `Method.recipe` has:
    train(cfg, split, run, tracker=None) -> metrics     # metrics["test"]: the test metrics; tracker: llmrec.tracking
    load_recommender(run, split) -> llmrec.serving.Serving   # score / recommend / evaluate(part) of a finished run
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any, Callable

from llmrec.errors import LlmrecError


@dataclass(frozen=True)
class Family:
    """Methods that share a split and metrics, so one benchmark table compares them."""

    name: str
    split_type: str
    """'module:Class' of the split a run saves under split/ (loaded with `Class.load(folder)`)."""
    eval_parts: tuple[str, ...]
    """Split parts `llmrec evaluate --parts` may score."""
    metrics: str
    """What it reports, for help texts."""

    def split_class(self):
        module, _, name = self.split_type.partition(":")
        return getattr(importlib.import_module(module), name)


FAMILIES = {f.name: f for f in (
    Family("click", "llmrec.data.types:ClickSplit", ("train", "valid", "valid_small", "test"),
           "AUC, UAUC, warm and cold AUC"),
    Family("sequence", "llmrec.data.types:SequenceSplit", ("valid", "test", "test_all"),
           "leave-one-out full-ranking HR@K, NDCG@K"),
    Family("holdout", "llmrec.data.holdout:HoldoutSplit", ("valid", "test"), "per-user held-out Recall@K, NDCG@K"),
)}


@dataclass(frozen=True)
class Method:
    """One method, or a named variant of one (`base` + `overrides`: an ablation or a code form)."""

    name: str
    family: str
    """A key of FAMILIES."""
    recipe: str | Any = None
    """The module (dotted name, imported on first use) or object with `train` (and `load_recommender`, unless
    `recommender` names another module)."""
    summary: str = ""
    """One line for `llmrec train --help` and the docs."""
    sections: tuple[str, ...] = ()
    """ExperimentConfig sections the method reads beyond the shared ones (data, llm, seed, report_to, eval), for
    `llmrec train --help` (the sequence baselines read lcrec's seen-item rule and test users)."""
    recommender: str | Any = None
    """Where `load_recommender` lives when not in `recipe` (a method whose recommender is its own module)."""
    base: str | None = None
    """For a variant: the method it runs (its config's `method`)."""
    overrides: tuple[str, ...] = ()
    """For a variant: `section.field=value` overrides applied before the user's."""
    eval_parts: tuple[str, ...] | None = None
    """Split parts `evaluate` may score, where they differ from the family's."""
    prepare: Callable | None = None
    """cfg -> cfg, run by `make_config` after parsing: a method's own consistency rule."""
    starts_from_tallrec: Callable | None = None
    """cfg -> bool: the run begins with TALLRec's stage 1, which `benchmark` trains once and shares through
    `stage1_from` (BinLLM two-step, CoLLM), as the papers do."""

    @property
    def runs_as(self) -> str:
        """The method name a run of this entry records (a variant records its base)."""
        return self.base or self.name

    @property
    def parts(self) -> tuple[str, ...]:
        return self.eval_parts or FAMILIES[self.family].eval_parts

    def module(self, role: str = "recipe"):
        """The object behind `recipe` (role 'recipe') or `recommender` (role 'recommender'), imported now."""
        entry = get(self.base) if self.base else self
        target = entry.recommender if role == "recommender" and entry.recommender is not None else entry.recipe
        return importlib.import_module(target) if isinstance(target, str) else target

    def train(self, cfg, split, run, tracker=None) -> dict:
        return self.module().train(cfg, split, run, tracker=tracker)

    def load_recommender(self, run, split):
        return self.module("recommender").load_recommender(run, split)

    def split_class(self):
        return FAMILIES[self.family].split_class()


_METHODS: dict[str, Method] = {}
_PLUGINS_LOADED = False
ENTRY_POINT_GROUP = "llmrec.methods"


def _load_plugins() -> None:
    """Register the `llmrec.methods` entry points of installed packages, once; a broken one is named."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            method = ep.load()
        except Exception as exc:  # a plugin's own import error: name it, keep llmrec usable
            raise LlmrecError(f"entry point {ep.name} = {ep.value} ({ENTRY_POINT_GROUP}): cannot load it "
                              f"({type(exc).__name__}: {exc})") from None
        if not isinstance(method, Method):
            raise LlmrecError(f"entry point {ep.name} = {ep.value} ({ENTRY_POINT_GROUP}): expected an "
                              f"llmrec.methods.registry.Method, got {type(method).__name__}")
        if method.name not in _METHODS:
            register(method)


def register(method: Method, replace: bool = False) -> Method:
    """Add a method (or variant) to the table; a second one under the same name is refused unless `replace`."""
    if method.family not in FAMILIES:
        raise LlmrecError(f"method {method.name!r}: unknown family {method.family!r}; expected "
                          f"{', '.join(FAMILIES)}")
    if method.base is not None:
        base = get(method.base)
        if base.base is not None or base.family != method.family:
            raise LlmrecError(f"variant {method.name!r}: its base {method.base!r} must be a method of its family")
    elif method.recipe is None:
        raise LlmrecError(f"method {method.name!r}: needs a recipe (module with train and load_recommender)")
    if method.name in _METHODS and not replace:
        raise LlmrecError(f"method {method.name!r} is already registered")
    _METHODS[method.name] = method
    return method


def unregister(name: str) -> None:
    _METHODS.pop(name, None)


def get(name: str) -> Method:
    """The registered method or variant called `name`; an unknown name fails with the known ones."""
    if name not in _METHODS:
        _load_plugins()
    try:
        return _METHODS[name]
    except KeyError:
        raise LlmrecError(f"unknown method {name!r}; expected one of {', '.join(names())}") from None


def names(family: str | None = None, variants: bool = False) -> list[str]:
    """Method names in registration order (of one family; with `variants`, the variants instead)."""
    _load_plugins()
    return [m.name for m in _METHODS.values()
            if (family is None or m.family == family) and (m.base is not None) == variants]


def family(method: str) -> str:
    """'click', 'sequence' or 'holdout': which split a method trains on and which metrics it reports."""
    return get(method).family


def _collab_model(cfg):
    """mf ... din: the method name picks the classic model; collab.model only records it."""
    if cfg.collab.model not in (cfg.method, "mf"):
        raise LlmrecError(f"collab.model={cfg.collab.model} contradicts the method {cfg.method}: the method name "
                          f"picks the model (llmrec train {cfg.collab.model} ...)")
    return dataclasses.replace(cfg, collab=dataclasses.replace(cfg.collab, model=cfg.method))


def _no_teacher(cfg):
    """TALLRec and ICL read titles only: there is no collaborative model to distil (StageConfig.teacher_weight)."""
    if cfg.stage1.teacher_weight > 0:
        raise LlmrecError(f"stage1.teacher_weight={cfg.stage1.teacher_weight}: {cfg.method} has no collaborative "
                          "model to learn from (binllm and collm have)")
    return cfg


_M = "llmrec.methods."
for _method in (
    # click family: the CoLLM/BinLLM split, pointwise AUC
    Method("popularity", "click", _M + "popularity.recipe", "train-popularity of the item: the floor"),
    *(Method(name, "click", _M + "classic.recipe", summary, ("collab",), prepare=_collab_model)
      for name, summary in (("mf", "matrix factorisation"), ("lightgcn", "LightGCN, pointwise"),
                            ("sasrec", "SASRec, pointwise"), ("din", "DIN"))),
    Method("binmf", "click", _M + "classic.recipe", "BinLLM's binary encoder alone", ("encoder",)),
    Method("icl", "click", _M + "tallrec.recipe", "the TALLRec prompt, zero-shot", prepare=_no_teacher),
    Method("tallrec", "click", _M + "tallrec.recipe", "LoRA on the text-only prompt", ("stage1",),
           prepare=_no_teacher),
    Method("binllm", "click", _M + "binllm.recipe", "collaborative codes as text in the prompt",
           ("binllm", "encoder", "stage1", "stage2"),
           starts_from_tallrec=lambda cfg: cfg.binllm.tuning == "two_step"),
    Method("collm", "click", _M + "collm.recipe", "collaborative embeddings mapped into the token space",
           ("collm", "collab", "encoder", "stage1", "stage2"), starts_from_tallrec=lambda cfg: True),
    # sequence family: leave-one-out, full ranking
    Method("popularity-rank", "sequence", _M + "popularity_rank.recipe", "train-sequence popularity", ("sequence", "lcrec")),
    Method("sasrec-rank", "sequence", _M + "sasrec_rank.recipe", "SASRec for next-item ranking",
           ("sequence", "seqrank", "lcrec")),
    Method("lcrec", "sequence", _M + "lcrec.recipe", "semantic item indices, constrained generation",
           ("sequence", "lcrec"), recommender=_M + "lcrec.recommend", eval_parts=("valid", "test")),
    # holdout family: per-user held-out items
    Method("popularity-holdout", "holdout", _M + "popularity_holdout.recipe", "train popularity", ("holdout",)),
    Method("multvae", "holdout", _M + "multvae.recipe", "Mult-VAE", ("holdout", "multvae")),
    Method("lightgcn-bpr", "holdout", _M + "lightgcn_bpr.recipe", "LightGCN with BPR", ("holdout", "bpr")),
    Method("cllm4rec", "holdout", _M + "cllm4rec.recipe", "user/item ID tokens, soft+hard prompting",
           ("holdout", "cllm4rec"), recommender=_M + "cllm4rec.recommend"),
    # variants: ablations and code forms, for `benchmark` and `train`
    Method("binllm-binary", "click", base="binllm", overrides=("binllm.code_format=binary",),
           summary="BinLLM with 32-character binary codes"),
    Method("lcrec-random-index", "sequence", base="lcrec", overrides=("lcrec.index=random",),
           summary="LC-Rec with random item indices"),
    Method("lcrec-no-sinkhorn", "sequence", base="lcrec", overrides=("lcrec.sinkhorn=false",),
           summary="LC-Rec without the Sinkhorn step"),
    # CLLM4Rec's tables, prompts, item head and fine-tuning with the LLM replaced by a mean of the prompt's ID rows
    Method("cllm4rec-no-llm", "holdout", base="cllm4rec",
           overrides=("cllm4rec.encoder=mean", "cllm4rec.content_epochs=0", "cllm4rec.alternate_epochs=0",
                      "cllm4rec.lora=false"), summary="CLLM4Rec's ID tables and head without the LLM"),
):
    register(_method)
