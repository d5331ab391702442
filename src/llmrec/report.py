"""Results as tables (markdown) and figures (PNG)."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from llmrec.paths import atomic_file  # noqa: E402


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def markdown_table(rows: list[dict], columns: list[str] | None = None, headers: dict | None = None) -> str:
    """Rows of dicts as a markdown table; missing values print as '-'."""
    if not rows:
        return ""
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    headers = headers or {}
    head = "| " + " | ".join(headers.get(c, c) for c in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def bar_chart(path: str | Path, labels: list[str], series: dict[str, list[float]], ylabel: str, title: str,
              ylim: tuple[float, float] | None = None) -> None:
    """Grouped bars: one group per label, one bar per series."""
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(labels) + 2), 3.6))
    width = 0.8 / max(1, len(series))
    for k, (name, values) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(labels))]
        ax.bar(xs, [0 if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values],
               width, label=name)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ylim:
        ax.set_ylim(*ylim)
    if len(series) > 1:
        ax.legend(frameon=False)
    ax.grid(axis="y", alpha=0.3)
    save_png(fig, path)


def panel_bars(path: str | Path, labels: list[str], panels: dict[str, list[float]], title: str) -> None:
    """One small bar panel per quantity (each with its own y axis), the same labels in each."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), squeeze=False)
    for ax, (name, values) in zip(axes[0], panels.items()):
        shown = [0 if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values]
        bars = ax.bar(range(len(labels)), shown, color=[f"C{i}" for i in range(len(labels))])
        ax.bar_label(bars, labels=[_fmt(v) for v in values], fontsize=8)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_title(name, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=11)
    save_png(fig, path)


def save_png(fig, path: str | Path) -> None:
    """Write the figure as PNG atomically and free it."""
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
