"""Code usage per level and the usage histogram (like MACRec Fig. 4)."""

from __future__ import annotations

import io
import os

import numpy as np


def usage_per_level(codes: np.ndarray, codebook_size: int) -> list[dict]:
    """Per level: items per code (counts [K]), codes used, fraction used, most items on one code."""
    out = []
    for level in range(codes.shape[1]):
        counts = np.bincount(codes[:, level], minlength=codebook_size)
        out.append(
            {
                "level": level,
                "codes_used": int((counts > 0).sum()),
                "fraction_used": float((counts > 0).mean()),
                "max_items_per_code": int(counts.max(initial=0)),
                "counts": counts.astype(int).tolist(),
            }
        )
    return out


def plot_code_usage(usage: dict[str, list[dict]], path: str, title: str = "", bucket: int = 16) -> None:
    """One panel per level, items per bucket of `bucket` consecutive codes, one bar series per modality.

    Written atomically (temp file + rename)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    modalities = list(usage)
    n_levels = len(usage[modalities[0]])
    fig, axes = plt.subplots(1, n_levels, figsize=(4 * n_levels, 3.2), squeeze=False)
    width = 0.8 / len(modalities)
    for level in range(n_levels):
        ax = axes[0][level]
        for i, m in enumerate(modalities):
            counts = np.asarray(usage[m][level]["counts"])
            size = bucket if len(counts) >= 2 * bucket else 1
            per_bucket = np.add.reduceat(counts, np.arange(0, len(counts), size))
            ax.bar(np.arange(len(per_bucket)) + i * width, per_bucket, width=width, label=m)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"level {level + 1}")
        ax.set_xlabel(f"bucket index ({size} codes each)" if size > 1 else "code")
        if level == 0:
            ax.set_ylabel("items")
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
    os.replace(tmp, path)
