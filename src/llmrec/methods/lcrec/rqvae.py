"""RQ-VAE item indexer (LC-Rec, arXiv 2311.09049, and its official `index/` code).

Model: MLP encoder (ReLU between layers, Xavier-normal weights, zero biases) -> L residual vector quantisers of
K codes each (dimension e_dim) -> mirrored MLP decoder. Loss = reconstruction MSE + mean over levels of
(codebook MSE + beta * commitment MSE), straight-through gradients through the quantiser.

Training (official defaults): AdamW lr 1e-3, weight decay 1e-4, batch 1024, gradient norm clipped to 1,
linear warm-up (50 epochs) then linear decay; every codebook is initialised by k-means on its level's residuals
of the first batch. Uniform semantic mapping: on the LAST level only, assignments during training come from
Sinkhorn-Knopp on the batch's distances rescaled to [-1, 1] (epsilon 0.003, 50 iterations), each item taking
its argmax. Every `eval_every` epochs the collision rate (argmin codes of all items) is measured and the state
with the lowest rate is kept (the official `best_collision_model`).

Index generation: argmin codes; groups of items sharing a full index are re-assigned with Sinkhorn on the last
level, group by group, up to 20 rounds (official `generate_indices.py`). Unlike the official files, no two items
end up sharing an index: what is left is resolved deterministically (`resolve_collisions`): groups in order of
their first item, the first item keeps the index, each other item (in id order) takes the nearest free index of
the residual tree: levels in order, each level's codes tried from nearest to farthest residual, subtrees with
no free index skipped. Its upper levels being argmin codes, that is the next-free last-level code by distance
under its own prefix; only when all K codes there are taken does it move to the next-nearest code a level up.

Size rule (documented default, `hidden=None`): hidden widths start at min(2048, in_dim // 2) and halve while
they stay above e_dim: in_dim 4096 (LLaMA) gives the official 2048-1024-512-256-128-64, MiniLM's 384 gives
192-96-48, SmolLM2's 576 gives 288-144-72-36. The codebook size is capped at the number of items (k-means
cannot place more centres than it has points).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llmrec.collab.loop import run_epochs
from llmrec.errors import LlmrecError
from llmrec.methods.lcrec.config import RQVAEConfig  # defined without torch, for the typed configs
from llmrec.methods.lcrec.vocab import ItemIndex
from llmrec.tracking import Tracker


def default_hidden(in_dim: int, e_dim: int) -> list[int]:
    """Hidden widths: start at min(2048, in_dim // 2), halve while above e_dim (4096 -> 2048 ... 64)."""
    out, width = [], min(2048, in_dim // 2)
    while width > e_dim:
        out.append(width)
        width //= 2
    return out


def _mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        lin = nn.Linear(a, b)
        nn.init.xavier_normal_(lin.weight)
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if k < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@torch.no_grad()
def sinkhorn_assign(distances: torch.Tensor, epsilon: float, iters: int) -> torch.Tensor:
    """Balanced assignment of rows (items) to columns (codes): argmax per row of the Sinkhorn-Knopp plan.

    The official algorithm: rescale the distances to [-1, 1], Q = exp(-d / epsilon), then alternately make every
    row sum equal (items) and every column sum equal (codes), 1/B and 1/K (constant factors do not change the
    argmax, so they are left out). Run in float64 with each row shifted by its minimum before the exponential
    (a row factor the next row normalisation absorbs): entries lie in [exp(-2/epsilon), 1], representable for
    epsilon >= 0.003. Should it still under- or overflow, the same iteration runs in the log domain.
    """
    d = distances.double()
    middle = (d.max() + d.min()) / 2
    amplitude = d.max() - middle + 1e-5
    d = (d - middle) / amplitude
    q = torch.exp(-(d - d.min(dim=1, keepdim=True).values) / epsilon)
    for _ in range(iters):
        q = q / q.sum(dim=1, keepdim=True)
        q = q / q.sum(dim=0, keepdim=True)
    if torch.isfinite(q).all():
        return q.argmax(dim=1)
    return sinkhorn_assign_log(d, epsilon, iters)


@torch.no_grad()
def sinkhorn_assign_log(scaled: torch.Tensor, epsilon: float, iters: int) -> torch.Tensor:
    """The same plan computed in the log domain from already rescaled distances (slower, never overflows)."""
    log_q = -scaled.double() / epsilon
    for _ in range(iters):
        log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True)
        log_q = log_q - torch.logsumexp(log_q, dim=0, keepdim=True)
    return log_q.argmax(dim=1)


class ResidualQuantizer(nn.Module):
    """L codebooks applied in turn to the residual of the previous ones."""

    def __init__(self, levels: int, codebook_size: int, e_dim: int, beta: float):
        super().__init__()
        self.beta = beta
        self.codebooks = nn.ModuleList(nn.Embedding(codebook_size, e_dim) for _ in range(levels))
        for cb in self.codebooks:  # the official init without k-means
            nn.init.uniform_(cb.weight, -1.0 / codebook_size, 1.0 / codebook_size)

    def distances(self, level: int, residual: torch.Tensor) -> torch.Tensor:
        w = self.codebooks[level].weight
        return (residual ** 2).sum(1, keepdim=True) + (w ** 2).sum(1)[None, :] - 2 * residual @ w.t()

    def forward(self, z: torch.Tensor, sinkhorn: tuple[float, int] | None = None):
        """(straight-through quantised z, mean level loss, codes [B, L]); `sinkhorn` = (epsilon, iters) on the
        last level, else argmin everywhere."""
        residual, z_q, losses, codes = z, torch.zeros_like(z), [], []
        for level, cb in enumerate(self.codebooks):
            d = self.distances(level, residual)
            last = level == len(self.codebooks) - 1
            idx = sinkhorn_assign(d, *sinkhorn) if (last and sinkhorn) else d.argmin(dim=1)
            q = cb(idx)
            losses.append(F.mse_loss(q, residual.detach()) + self.beta * F.mse_loss(q.detach(), residual))
            q = residual + (q - residual).detach()
            residual = residual - q
            z_q = z_q + q
            codes.append(idx)
        return z_q, torch.stack(losses).mean(), torch.stack(codes, dim=1)


class RQVAE(nn.Module):
    """Encoder MLP -> residual quantiser -> decoder MLP."""

    def __init__(self, in_dim: int, cfg: RQVAEConfig, codebook_size: int | None = None):
        super().__init__()
        self.hidden = list(cfg.hidden) if cfg.hidden is not None else default_hidden(in_dim, cfg.e_dim)
        dims = [in_dim, *self.hidden, cfg.e_dim]
        self.encoder = _mlp(dims)
        self.quantizer = ResidualQuantizer(cfg.levels, codebook_size or cfg.codebook_size, cfg.e_dim, cfg.beta)
        self.decoder = _mlp(dims[::-1])
        self.cfg = cfg

    def forward(self, x: torch.Tensor, use_sinkhorn: bool = False):
        sk = (self.cfg.sk_epsilon, self.cfg.sk_iters) if use_sinkhorn else None
        z_q, q_loss, codes = self.quantizer(self.encoder(x), sk)
        out = self.decoder(z_q)
        recon = F.mse_loss(out, x)
        return recon + self.cfg.quant_loss_weight * q_loss, recon, codes

    @torch.no_grad()
    def codes(self, x: torch.Tensor, use_sinkhorn: bool = False) -> torch.Tensor:
        sk = (self.cfg.sk_epsilon, self.cfg.sk_iters) if use_sinkhorn else None
        return self.quantizer(self.encoder(x), sk)[2]

    @torch.no_grad()
    def kmeans_init(self, x: torch.Tensor, iters: int, seed: int) -> None:
        """Each codebook := k-means centres of its level's residuals of `x` (argmin residuals passed down)."""
        from sklearn.cluster import KMeans
        from sklearn.exceptions import ConvergenceWarning

        residual = self.encoder(x)
        for level, cb in enumerate(self.quantizer.codebooks):
            with warnings.catch_warnings():  # duplicate points (items with identical text) are fine here
                warnings.simplefilter("ignore", ConvergenceWarning)
                km = KMeans(n_clusters=cb.num_embeddings, max_iter=iters, n_init=1, random_state=seed + level)
                km.fit(residual.double().cpu().numpy())
            cb.weight.copy_(torch.as_tensor(km.cluster_centers_, dtype=cb.weight.dtype))
            residual = residual - cb(self.quantizer.distances(level, residual).argmin(dim=1))


def collision_rate(codes: np.ndarray) -> float:
    """(items - distinct full indices) / items, the official definition."""
    codes = np.asarray(codes)
    return float((len(codes) - len(np.unique(codes, axis=0))) / len(codes)) if len(codes) else 0.0


def collision_groups(codes: np.ndarray) -> list[np.ndarray]:
    """Row numbers of items sharing a full index, one array per shared index (rows ascending, groups by first row)."""
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    groups = [np.flatnonzero(inverse == g) for g in np.flatnonzero(counts > 1)]
    return sorted(groups, key=lambda g: int(g[0]))


@dataclass
class RQVAEResult:
    """A trained indexer, the unique item index it produced, and what happened on the way."""

    model: RQVAE
    index: ItemIndex
    report: dict
    """collision rates (argmin, after Sinkhorn rounds, final), codebook usage per level, reconstruction MSE,
    best epoch, sizes, seconds."""


_INDEX_ONLY = ("collision_rounds",)
"""RQVAEConfig fields that act after training (index generation): a checkpoint may be resumed with others."""


def train_rqvae(embeddings: np.ndarray, cfg: RQVAEConfig | None = None, *, progress: bool = False,
                device: str = "cpu", tracker: Tracker | None = None,
                checkpoint: str | Path | None = None) -> tuple[RQVAE, dict]:
    """Train an RQ-VAE on item embeddings [n, d] (float); returns the selected model and a training report.

    The epochs are `llmrec.collab.loop`'s: every `eval_every` epochs the collision rate is measured and the state
    with the lowest one kept (no early stop). `checkpoint`: a file written after every epoch; when it exists,
    training resumes from it. `tracker` (llmrec.tracking) gets train_loss, recon, lr, samples_per_s every epoch
    and valid_collision_rate at evaluations."""
    cfg = cfg or RQVAEConfig()
    cfg.validate()
    x = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32, device=device)
    if x.ndim != 2 or len(x) < 2:
        raise LlmrecError(f"RQ-VAE: expected embeddings of shape [items >= 2, dim], got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise LlmrecError("RQ-VAE: embeddings contain NaN or inf")
    n = len(x)
    k = min(cfg.codebook_size, n)
    g = torch.Generator().manual_seed(cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = RQVAE(x.shape[1], cfg, codebook_size=k).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total, warmup = cfg.epochs * steps_per_epoch, cfg.warmup_epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup)))

    def train_epoch(epoch: int) -> dict:
        order = torch.randperm(n, generator=g).to(device)
        epoch_loss = epoch_recon = 0.0
        for s in range(steps_per_epoch):
            batch = x[order[s * cfg.batch_size:(s + 1) * cfg.batch_size]]
            if epoch == 1 and s == 0 and cfg.kmeans_init:
                model.kmeans_init(batch if len(batch) >= k else x, cfg.kmeans_iters, cfg.seed)
            loss, recon, _ = model(batch, use_sinkhorn=cfg.sinkhorn)
            if not torch.isfinite(loss):
                raise RuntimeError(f"RQ-VAE loss is {loss.item()} at epoch {epoch - 1}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.max_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            opt.step()
            sched.step()
            epoch_loss += loss.item() * len(batch)
            epoch_recon += recon.item() * len(batch)
        return {"loss": epoch_loss / n, "recon": epoch_recon / n}

    def restore(extra: dict) -> None:
        g.set_state(torch.tensor(extra["generator"], dtype=torch.uint8))

    fingerprint = {k: v for k, v in asdict(cfg).items() if k not in _INDEX_ONLY}
    loop = run_epochs(model, opt, train_epoch, lambda: {"collision_rate": collision_rate(model.codes(x).cpu().numpy())},
                      epochs=cfg.epochs, metric="collision_rate", higher_is_better=False, eval_every=cfg.eval_every,
                      samples_per_epoch=n, checkpoint=checkpoint, scheduler=sched,
                      fingerprint={**fingerprint, "items": n, "in_dim": int(x.shape[1])},
                      extra_state=lambda: {"generator": g.get_state().tolist()}, load_extra_state=restore,
                      tracker=tracker, progress=progress, desc="rq-vae")
    history = [{"epoch": h["epoch"], "loss": h["loss"], "recon": h["recon"],
                "collision_rate": h["valid_collision_rate"]} for h in loop.history if "valid_collision_rate" in h]
    report = {"items": n, "in_dim": int(x.shape[1]), "hidden": model.hidden, "levels": cfg.levels,
              "codebook_size": k, "epochs": cfg.epochs, "best_epoch": loop.best_epoch or None,
              "train_seconds": round(loop.seconds, 2), "history": history}
    return model, report


@torch.no_grad()
def resolve_collisions(model: RQVAE, x: torch.Tensor, codes: np.ndarray) -> tuple[np.ndarray, int]:
    """Make every row's index unique, deterministically (see the module docstring); returns (codes, moved)."""
    q = model.quantizer
    z = model.encoder(x)

    def nearest_first(depth: int, residual: torch.Tensor):  # codes by distance, each with the residual under it
        for c in q.distances(depth, residual)[0].argsort().tolist():
            yield c, residual - q.codebooks[depth].weight[c][None, :]

    return unique_codes(codes, q.codebooks[0].num_embeddings, lambda row: (nearest_first, z[row:row + 1]))


def unique_codes(codes: np.ndarray, k: int, choices) -> tuple[np.ndarray, int]:
    """Make every row's index unique: groups of rows sharing one in order of their first row, the first row keeps
    it, each other row (ascending) takes the first free index met depth-first through `choices(row)` =
    (order, state), where `order(depth, state)` yields (code, state below it) in preference order. Returns
    (codes, rows moved). Used with the RQ-VAE's distances here, and without a model for index files."""
    codes = np.array(codes, dtype=np.int64, copy=True)
    levels = codes.shape[1]
    occupancy: dict[tuple, int] = {}  # indices (and their prefixes) in use, with multiplicity
    for c in map(tuple, codes.tolist()):
        for depth in range(1, levels + 1):
            occupancy[c[:depth]] = occupancy.get(c[:depth], 0) + 1
    moved = 0
    for group in collision_groups(codes):
        for row in group[1:]:  # the group's first item keeps the index
            old = tuple(codes[row].tolist())
            for depth in range(1, levels + 1):
                occupancy[old[:depth]] -= 1
            order, state = choices(int(row))
            new = _nearest_free(order, state, occupancy, levels, k)
            if new is None:
                raise LlmrecError(f"item index: no free index left ({len(codes)} items, {k} codes per level, "
                                  f"{levels} levels)")
            for depth in range(1, levels + 1):
                occupancy[new[:depth]] = occupancy.get(new[:depth], 0) + 1
            codes[row] = new
            moved += 1
    return codes, moved


def _nearest_free(order, state, occupancy: dict, levels: int, k: int, prefix: tuple = ()) -> tuple | None:
    """Depth-first through the levels, each level's codes in `order`, skipping subtrees with no free index
    left: the first free full index met."""
    for c, below in order(len(prefix), state):
        cand = prefix + (c,)
        if occupancy.get(cand, 0) >= k ** (levels - len(cand)):
            continue  # every index under it is taken
        if len(cand) == levels:
            return cand
        found = _nearest_free(order, below, occupancy, levels, k, cand)
        if found is not None:
            return found
    return None


@torch.no_grad()
def generate_indices(model: RQVAE, embeddings: np.ndarray, *, collision_rounds: int = 20,
                     device: str = "cpu") -> tuple[np.ndarray, dict]:
    """Unique codes [n, L] for the embeddings: argmin, Sinkhorn rounds on colliding groups, then resolution."""
    model.eval()
    x = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32, device=device)
    codes = model.codes(x).cpu().numpy()
    report = {"identical_inputs": int(len(x) - len(torch.unique(x, dim=0))),  # no index can separate these
              "collision_rate_argmin": collision_rate(codes),
              "max_items_per_index_argmin": int(np.unique(codes, axis=0, return_counts=True)[1].max())}
    rounds = 0
    for _ in range(collision_rounds):
        groups = collision_groups(codes)
        if not groups:
            break
        rounds += 1
        for rows in groups:
            codes[rows] = model.codes(x[torch.as_tensor(rows, device=device)], use_sinkhorn=True).cpu().numpy()
    report["sinkhorn_rounds"] = rounds
    report["collision_rate_sinkhorn"] = collision_rate(codes)
    codes, moved = resolve_collisions(model, x, codes)
    report["resolved_deterministically"] = moved
    report["collision_rate_final"] = collision_rate(codes)
    k = model.quantizer.codebooks[0].num_embeddings
    report["codebook_usage"] = [round(len(np.unique(codes[:, level])) / k, 4) for level in range(codes.shape[1])]
    z = model.encoder(x)
    zq = torch.zeros_like(z)
    for level, cb in enumerate(model.quantizer.codebooks):
        zq = zq + cb.weight[torch.as_tensor(codes[:, level], device=device)]
    report["recon_mse"] = float(F.mse_loss(model.decoder(zq), x))
    report["quantization_mse"] = float(F.mse_loss(zq, z))
    return codes, report


def build_index(embeddings: np.ndarray, cfg: RQVAEConfig | None = None, *, progress: bool = False,
                device: str = "cpu", tracker: Tracker | None = None,
                checkpoint: str | Path | None = None) -> RQVAEResult:
    """Train the RQ-VAE on embeddings of items 1..n (row i-1 = item i) and return a unique ItemIndex;
    `checkpoint`: as in `train_rqvae`."""
    cfg = cfg or RQVAEConfig()
    model, report = train_rqvae(embeddings, cfg, progress=progress, device=device, tracker=tracker,
                                checkpoint=checkpoint)
    codes, gen = generate_indices(model, embeddings, collision_rounds=cfg.collision_rounds, device=device)
    report.update(gen)
    report["config"] = asdict(cfg)
    full = np.vstack([np.full((1, codes.shape[1]), -1, dtype=np.int64), codes])
    return RQVAEResult(model=model, index=ItemIndex(full), report=report)


def random_index(n_items: int, levels: int = 4, codebook_size: int = 256, seed: int = 2024) -> ItemIndex:
    """Ablation: every item gets a distinct index drawn uniformly at random (no semantics shared by neighbours).

    n_items counts the padding row (as Dataset.n_items)."""
    n = n_items - 1
    if n > codebook_size ** levels:
        raise LlmrecError(f"random index: {n} items do not fit in {codebook_size}^{levels} indices")
    rng = np.random.default_rng(seed)
    seen: set[tuple] = set()
    rows = []
    while len(rows) < n:
        for c in map(tuple, rng.integers(0, codebook_size, size=(n - len(rows), levels)).tolist()):
            if c not in seen:
                seen.add(c)
                rows.append(c)
    return ItemIndex(np.vstack([np.full((1, levels), -1, dtype=np.int64), np.asarray(rows, dtype=np.int64)]))
