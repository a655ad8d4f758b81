"""Raw Amazon Reviews 2018 (5-core reviews + metadata, JSON lines, optionally gzipped) -> Dataset.

The MQL4GRec / LC-Rec preprocessing: keep the first review of each (user, item); drop items
without metadata or without a title; iterative k-core on users and items; order each user's items
by time (ties keep file order); leave-one-out split. User ids follow first appearance in the
reviews file, item ids first appearance when walking users in id order (as the official files).
"""

from __future__ import annotations

import gzip
import html
import json
import zlib
from collections import Counter

import numpy as np
from tqdm import tqdm

from mqlrec.data.dataset import DataError, Dataset
from mqlrec.data.files import require_file
from mqlrec.data.split import MIN_SEQUENCE_LENGTH, leave_one_out


def _json_lines(path: str, desc: str):
    """Yield (line number, object) of a JSON-lines file (.gz or plain)."""
    require_file(path, desc)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(tqdm(f, desc=f"read {desc}", unit=" lines", disable=None), 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}: line {lineno}: malformed JSON ({e.msg})") from None
                if not isinstance(record, dict):
                    raise DataError(f"{path}: line {lineno}: expected a JSON object")
                yield lineno, record
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        raise DataError(f"{path}: unreadable ({type(e).__name__}: {e})") from None


def read_reviews(path: str) -> list[tuple[str, str, int]]:
    """(reviewerID, asin, unixReviewTime) in file order, first review of each (user, item) only."""
    seen: set[tuple[str, str]] = set()
    rows = []
    for lineno, r in _json_lines(path, "reviews"):
        try:
            user, item, time = r["reviewerID"], r["asin"], int(r["unixReviewTime"])
        except KeyError as e:
            raise DataError(f"{path}: line {lineno}: missing field {e.args[0]!r}") from None
        except (TypeError, ValueError):
            raise DataError(f"{path}: line {lineno}: unixReviewTime must be an integer") from None
        if not isinstance(user, str) or not isinstance(item, str) or not user or not item:
            raise DataError(f"{path}: line {lineno}: reviewerID and asin must be non-empty strings")
        if (user, item) not in seen:
            seen.add((user, item))
            rows.append((user, item, time))
    if not rows:
        raise DataError(f"{path}: no reviews")
    return rows


def _clean(value) -> str:
    if isinstance(value, list):
        value = " ".join(str(v) for v in value if v)
    return " ".join(html.unescape(str(value or "")).split())


def read_meta(path: str) -> dict[str, dict]:
    """asin -> {title, description, brand, categories} for items with a non-empty title (first entry wins)."""
    meta: dict[str, dict] = {}
    for lineno, r in _json_lines(path, "metadata"):
        asin = r.get("asin")
        if not isinstance(asin, str) or not asin:
            raise DataError(f"{path}: line {lineno}: missing field 'asin'")
        title = _clean(r.get("title"))
        if asin in meta or not title:
            continue
        categories = r.get("category", r.get("categories", []))
        meta[asin] = {
            "title": title,
            "description": _clean(r.get("description")),
            "brand": _clean(r.get("brand")),
            "categories": [_clean(c) for c in categories if _clean(c)] if isinstance(categories, list) else [],
        }
    return meta


def k_core(rows: list[tuple[str, str, int]], k: int) -> list[tuple[str, str, int]]:
    """Drop users and items with fewer than k interactions, repeatedly, until none is left to drop."""
    while True:
        users = Counter(r[0] for r in rows)
        items = Counter(r[1] for r in rows)
        kept = [r for r in rows if users[r[0]] >= k and items[r[1]] >= k]
        if len(kept) == len(rows):
            return kept
        rows = kept


def prepare_amazon(reviews_path: str, meta_path: str, k: int = 5, name: str = "amazon") -> Dataset:
    if k < 1:
        raise DataError(f"--k must be >= 1, got {k}")
    rows = read_reviews(reviews_path)
    meta = read_meta(meta_path)
    rows = [r for r in rows if r[1] in meta]
    rows = k_core(rows, k)
    if not rows:
        raise DataError(f"{reviews_path}: no interactions left after dropping items without metadata and {k}-core")

    by_user: dict[str, list[tuple[int, int, str]]] = {}
    for position, (user, item, time) in enumerate(rows):
        by_user.setdefault(user, []).append((time, position, item))  # position breaks time ties by file order
    short = [u for u, v in by_user.items() if len(v) < MIN_SEQUENCE_LENGTH]
    if short:
        raise DataError(
            f"{reviews_path}: user {short[0]} has {len(by_user[short[0]])} item(s) after {k}-core; "
            f"leave-one-out needs at least {MIN_SEQUENCE_LENGTH} (use --k >= {MIN_SEQUENCE_LENGTH})"
        )
    user_ids = list(by_user)  # dicts keep first-appearance order
    item_index: dict[str, int] = {}
    sequences = []
    for user in user_ids:
        chronological = [item for _, _, item in sorted(by_user[user])]
        sequences.append(np.array([item_index.setdefault(i, len(item_index)) for i in chronological], dtype=np.int32))
    item_ids = list(item_index)
    return Dataset(
        name=name,
        sequences=sequences,
        n_items=len(item_ids),
        item_text=[meta[a] for a in item_ids],
        splits=leave_one_out(sequences),
        user_ids=user_ids,
        item_ids=item_ids,
    )
