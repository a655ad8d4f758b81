"""Low-level file readers/writers shared by every format: JSON, id maps, RecBole .inter TSV, atomic writes.

Every reader raises DataError naming the file (and the line where it applies); every writer
goes through a temp file + os.replace so a failure never leaves half a file behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager

import numpy as np

from mqlrec.data.dataset import DataError, Split

INTER_HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token"


def require_file(path: str, what: str = "file") -> None:
    if not os.path.isfile(path):
        raise DataError(f"{path}: {what} not found")


def read_json(path: str):
    require_file(path, "JSON file")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason})") from None


def parse_int(text, path: str, where: str) -> int:
    """int(text) for ids written as strings or numbers; anything else is a DataError."""
    if isinstance(text, bool) or isinstance(text, float):
        raise DataError(f"{path}: {where}: expected an integer id, got {text!r}")
    try:
        return int(text)
    except (TypeError, ValueError):
        raise DataError(f"{path}: {where}: expected an integer id, got {text!r}") from None


def read_inter_json(path: str) -> list[np.ndarray]:
    """{"user id": [item id, ...]} with user ids exactly 0..U-1 -> sequences indexed by user id."""
    raw = read_json(path)
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"{path}: expected a non-empty JSON object user id -> list of item ids")
    by_user: dict[int, np.ndarray] = {}
    for key, items in raw.items():
        user = parse_int(key, path, "user key")
        if not isinstance(items, list):
            raise DataError(f"{path}: user {key}: expected a list of item ids, got {type(items).__name__}")
        if not all(type(i) is int for i in items):  # slow path only to name the bad value
            items = [parse_int(i, path, f"user {key}") for i in items]
        try:
            by_user[user] = np.array(items, dtype=np.int64)
        except OverflowError:
            raise DataError(f"{path}: user {key}: item id out of range") from None
    users = sorted(by_user)
    if users != list(range(len(users))):
        missing = sorted(set(range(len(users))) - set(users))[:5]
        raise DataError(f"{path}: user ids must be exactly 0..{len(users) - 1} (missing e.g. {missing})")
    return [by_user[u].astype(np.int32) for u in users]


def read_id_map(path: str) -> list[str]:
    """`external<TAB>id` lines with ids exactly 0..N-1 -> external ids in id order."""
    require_file(path, "id map")
    ids: dict[int, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) != 2 or not parts[0]:
                raise DataError(f"{path}: line {lineno}: expected 'external_id<TAB>integer_id', got {line[:80]!r}")
            internal = parse_int(parts[1], path, f"line {lineno}")
            if internal in ids:
                raise DataError(f"{path}: line {lineno}: id {internal} appears twice")
            ids[internal] = parts[0]
    if not ids:
        raise DataError(f"{path}: empty id map")
    if sorted(ids) != list(range(len(ids))):
        raise DataError(f"{path}: ids must be exactly 0..{len(ids) - 1} (non-contiguous ids)")
    return [ids[i] for i in range(len(ids))]


def read_inter_tsv(path: str, n_items: int, n_users: int) -> Split:
    """RecBole atomic file `user_id:token  item_id_list:token_seq  item_id:token` -> Split."""
    require_file(path, "split file")
    users, histories, targets = [], [], []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").rstrip("\r")
        if header != INTER_HEADER:
            raise DataError(f"{path}: line 1: expected header {INTER_HEADER!r}, got {header[:80]!r}")
        for lineno, line in enumerate(f, 2):
            line = line.rstrip("\n").rstrip("\r")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                raise DataError(f"{path}: line {lineno}: expected 3 tab-separated fields, got {len(parts)}")
            try:
                user = int(parts[0])
                history = [int(x) for x in parts[1].split()]
                target = int(parts[2])
            except ValueError:
                raise DataError(f"{path}: line {lineno}: ids must be integers, got {line[:80]!r}") from None
            if not history:
                raise DataError(f"{path}: line {lineno}: empty item history")
            if not 0 <= user < n_users:
                raise DataError(f"{path}: line {lineno}: unknown user id {user} (have {n_users} users)")
            bad = [i for i in history + [target] if not 0 <= i < n_items]
            if bad:
                raise DataError(f"{path}: line {lineno}: unknown item id {bad[0]} (have {n_items} items)")
            users.append(user)
            histories.append(np.array(history, dtype=np.int32))
            targets.append(target)
    if not users:
        raise DataError(f"{path}: no rows after the header")
    return Split(np.array(users, dtype=np.int64), histories, np.array(targets, dtype=np.int64))


def inter_tsv_text(split: Split) -> str:
    lines = [INTER_HEADER]
    for user, history, target in zip(split.users, split.histories, split.targets):
        lines.append(f"{int(user)}\t{' '.join(map(str, history.tolist()))}\t{int(target)}")
    return "\n".join(lines) + "\n"


def write_text_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


@contextmanager
def staged_dir(out_dir: str):
    """Yield a fresh temp folder next to out_dir; on success move its files into out_dir.

    Everything is written to the temp folder first, so an error while writing leaves out_dir untouched.
    """
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.tmp-", dir=parent)
    try:
        yield tmp
        if not os.path.exists(out_dir):
            os.replace(tmp, out_dir)
            return
        if not os.path.isdir(out_dir):
            raise DataError(f"{out_dir}: exists and is not a directory")
        for name in sorted(os.listdir(tmp)):
            os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
