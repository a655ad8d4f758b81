"""Item embedding tables (.npy, one row per item id) with shape and finiteness checks."""

from __future__ import annotations

import os

import numpy as np

from mqlrec.data.dataset import DataError
from mqlrec.data.files import require_file


def embedding_path(dataset_dir: str, modality: str) -> str:
    """Where write_mqlrec puts (and readers look for) a modality's table: DIR/X.emb-<modality>.npy."""
    name = os.path.basename(os.path.normpath(dataset_dir))
    return os.path.join(dataset_dir, f"{name}.emb-{modality}.npy")


def check_embedding(table: np.ndarray, n_items: int, source: str) -> np.ndarray:
    table = np.asarray(table)
    if table.ndim != 2 or table.shape[0] != n_items or table.shape[1] == 0:
        raise DataError(f"{source}: embedding table has shape {table.shape}, need [{n_items}, D] (one row per item)")
    if not np.issubdtype(table.dtype, np.number) or np.issubdtype(table.dtype, np.complexfloating):
        raise DataError(f"{source}: embedding table has dtype {table.dtype}, need real numbers")
    with np.errstate(over="ignore"):  # values beyond float32 become inf and are reported below
        table = np.ascontiguousarray(table, dtype=np.float32)
    bad = ~np.isfinite(table)
    if bad.any():
        row = int(np.nonzero(bad.any(axis=1))[0][0])
        raise DataError(f"{source}: embedding table has NaN or inf (first at row {row}), or values beyond float32")
    return table


def load_embedding(path: str, n_items: int) -> np.ndarray:
    """Load a [n_items, D] table as float32; DataError naming the file on wrong rows, NaN or inf."""
    require_file(path, "embedding file")
    try:
        table = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy array ({e})") from None
    return check_embedding(table, n_items, path)
