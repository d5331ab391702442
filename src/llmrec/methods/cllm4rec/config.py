"""CLLM4Rec settings. The defaults are a small CPU budget for ml-100k with the embedded SmolLM2-135M (about 15
minutes on 2 cores; configs/cllm4rec-ml100k.yaml spends about 30); `CLLM4RecConfig.paper()` gives the official
run's settings (GPT-2, many epochs, GPUs)."""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from llmrec.errors import LlmrecError

FINETUNE_TARGETS = ("heldout", "all")
NEW_USER = ("mean", "zero")


@dataclass
class CLLM4RecConfig:
    """Backbone, ID tokens, pre-training, recommendation fine-tuning and evaluation of CLLM4Rec."""

    # -- backbone and ID tokens
    backbone: str = "smollm2-135m"
    """Backbone name for `llmrec.llm.load_backbone` (embedded name, local directory or Hugging Face id)."""
    dtype: str = "auto"
    """Backbone dtype: auto (float32 on CPU, bfloat16 on CUDA), float32, bfloat16, float16."""
    device: str = "auto"
    """Device: auto (CUDA when available), cpu, cuda, cuda:0 ... (under `accelerate launch`, the process's own)."""
    init_std: float | None = None
    """Std of the normal initialisation of the user/item token embeddings; None: the backbone's
    initializer_range (GPT-2 and SmolLM2: 0.02), as the official code does."""
    lora: bool = False
    """Train LoRA adapters on the backbone as well (shared by both LMs). Off: the backbone is frozen (official)."""
    lora_r: int = 8
    """LoRA rank."""
    lora_alpha: int = 16
    """LoRA scaling numerator."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA input."""
    lora_targets: list = field(default_factory=lambda: ["q_proj", "v_proj"])
    """Module names that get adapters."""

    # -- documents
    content_verb: str | None = None
    """Verb of the content prompt "<user_i> has <verb> <item_j>:"; None: "watched" for MovieLens sources
    (name starting with "ml"), else "interacted with"."""
    max_doc_items: int | None = 20
    """Collaborative documents: at most this many of the user's train items (a seeded random subset when longer;
    the prompt is never cut)."""
    max_text_tokens: int = 32
    """Content documents: the item text (title and genres) is cut to this many tokens (plus the end token)."""
    max_content_docs: int | None = 600
    """Content documents used (one per train pair, a seeded random subset when there are more); None: all."""

    # -- pre-training (collaborative + content LMs with mutual regularisation)
    lambda_reg: float = 1.0
    """Mutual regularisation weight: lambda x squared distance between the collaborative and content embeddings
    of each user/item token in a document, the other side held fixed (official: 1). Summed over the document's
    ID tokens and averaged over the batch's documents (the official code sums over the whole batch)."""
    content_epochs: float = 1.0
    """Epochs of the content LM alone before alternating (official: 10)."""
    alternate_epochs: float = 1.0
    """Epochs of alternating training, one epoch = every collaborative and every content batch once, each batch
    updating one LM with the other held fixed, batches in a shuffled order (official: 100 rounds of one
    collaborative epoch then one content epoch)."""
    pretrain_lr: float = 1e-3
    """Learning rate of pre-training (official: Adam 1e-3)."""
    pretrain_batch_size: int = 20
    """Documents per pre-training batch (official: 20 per GPU); batches group documents of similar length."""

    # -- recommendation fine-tuning
    finetune_lr: float = 1e-3
    """Learning rate of fine-tuning (official: 1e-4 over up to 150 epochs; the small budget needs larger steps)."""
    finetune_epochs: float = 1.0
    """Maximum fine-tuning epochs over the users (official: 150). Each epoch is a fresh draw of every user's
    held-out items; a fractional value takes a random part of the last draw."""
    finetune_batch_size: int = 16
    """Users per fine-tuning batch (official: 20)."""
    heldout_ratio: float = 0.2
    """Share of a user's train items held out of the prompt each time the user is drawn (at least one)."""
    finetune_target: str = "heldout"
    """Multinomial likelihood over: "heldout" (the held-out 20%, the paper) or "all" (all train items, the
    official code)."""
    max_prompt_items: int | None = 20
    """At most this many items in the fine-tuning / inference prompt (a random subset when longer; the final
    instruction is never cut)."""
    finetune_reg: bool = True
    """Keep the mutual regulariser (toward the fixed content embeddings) during fine-tuning, as the official
    fine-tuning script does."""
    eval_every: int = 20
    """Validate every this many fine-tuning steps (and at the end)."""
    patience: int | None = 5
    """Stop after this many validations without gain; None never stops early."""
    max_valid_users: int | None = 200
    """Validate on a seeded random subset of this many users (the test part always uses all); None: all."""
    eval_users_per_batch: int = 16
    """Users per scoring batch."""
    new_user: str = "mean"
    """User token of a user unknown at training time: "mean" (mean of the trained user embeddings) or "zero"."""

    seed: int = 2023
    """Seeds the ID-token initialisation, document sampling, batch order and prompt sampling."""

    def validate(self) -> None:
        def bad(name, why):
            raise LlmrecError(f"CLLM4RecConfig.{name}: {why} (got {getattr(self, name)!r})")

        if self.finetune_target not in FINETUNE_TARGETS:
            bad("finetune_target", f"expected one of {', '.join(FINETUNE_TARGETS)}")
        if self.new_user not in NEW_USER:
            bad("new_user", f"expected one of {', '.join(NEW_USER)}")
        if not 0 < self.heldout_ratio < 1:
            bad("heldout_ratio", "must be in (0, 1)")
        if self.lambda_reg < 0:
            bad("lambda_reg", "must be >= 0")
        for name in ("content_epochs", "alternate_epochs"):
            if getattr(self, name) < 0:
                bad(name, "must be >= 0")
        if not self.finetune_epochs > 0:
            bad("finetune_epochs", "must be > 0")
        for name in ("pretrain_batch_size", "finetune_batch_size", "eval_users_per_batch", "eval_every",
                     "max_text_tokens"):
            if getattr(self, name) < 1:
                bad(name, "must be >= 1")
        for name in ("max_doc_items", "max_prompt_items", "max_content_docs", "max_valid_users", "patience"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                bad(name, "must be >= 1 or None")

    @classmethod
    def paper(cls, **overrides) -> "CLLM4RecConfig":
        """The official run: GPT-2 frozen, content LM 10 epochs then 100 alternating rounds at lr 1e-3, batch 20;
        fine-tuning lr 1e-4 for up to 150 epochs selected on the full validation set."""
        base = cls(backbone="gpt2", max_doc_items=None, max_content_docs=None, max_text_tokens=256,
                   content_epochs=10, alternate_epochs=100, finetune_lr=1e-4, finetune_epochs=150,
                   finetune_batch_size=20, max_prompt_items=None, max_valid_users=None, patience=None)
        return replace(base, **overrides)

    @classmethod
    def from_dict(cls, values: dict) -> "CLLM4RecConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise LlmrecError(f"cllm4rec config: unknown field(s) {', '.join(unknown)}")
        return cls(**values)
