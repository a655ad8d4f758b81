"""Read and write semantic-ID index files in the MQL4GRec format: {"item id": ["<a_170>", ...]}."""

from __future__ import annotations

import json
import os
import re

import numpy as np

from mqlrec.data.dataset import DataError
from mqlrec.language.vocabulary import LEVEL_LETTERS

_TOKEN = re.compile(r"^<([A-Za-z])_(\d+)>$")


def read_index(path: str, n_items: int | None = None) -> tuple[str, np.ndarray]:
    """Return (modality, codes [N, L] int64). Item ids must be 0..N-1 (N = n_items when given)."""
    if not os.path.exists(path):
        raise DataError(f"{path}: index file not found")
    try:
        with open(path) as f:
            raw = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON at line {e.lineno}: {e.msg}") from None
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"{path}: expected a non-empty JSON object item id -> token list")
    n = len(raw) if n_items is None else n_items
    try:
        ids = sorted(int(k) for k in raw)
    except ValueError:
        raise DataError(f"{path}: item ids must be integers") from None
    if ids != list(range(n)):
        raise DataError(f"{path}: item ids must be exactly 0..{n - 1}, got {len(ids)} ids from {ids[0]} to {ids[-1]}")
    depth = len(raw[str(ids[0])])
    codes = np.zeros((n, depth), dtype=np.int64)
    modality = None
    for key, tokens in raw.items():
        if not isinstance(tokens, list) or len(tokens) != depth:
            raise DataError(f"{path}: item {key} has {tokens!r}; every item needs {depth} tokens")
        for level, tok in enumerate(tokens):
            m = _TOKEN.match(str(tok))
            if m is None:
                raise DataError(f"{path}: item {key}: bad token {tok!r} (want <a_12>)")
            letter, code = m.group(1), int(m.group(2))
            tok_modality = "text" if letter.islower() else "image"
            if LEVEL_LETTERS[tok_modality][level] != letter:
                raise DataError(f"{path}: item {key}: token {tok!r} at level {level}")
            if modality is None:
                modality = tok_modality
            elif tok_modality != modality:
                raise DataError(f"{path}: item {key}: mixes text and image tokens")
            codes[int(key), level] = code
    return modality, codes


def write_index(path: str, modality: str, codes: np.ndarray) -> None:
    """Write atomically (temp file + rename) so a failure never leaves half a file."""
    letters = LEVEL_LETTERS[modality]
    data = {str(i): [f"<{letters[l]}_{int(c)}>" for l, c in enumerate(row)] for i, row in enumerate(codes)}
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)
