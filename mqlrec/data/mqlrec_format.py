"""Read and write a dataset folder in the MQL4GRec format (LC-Rec folders read the same way).

Folder DIR, name X = basename(DIR) (or the stem of the folder's only *.inter.json):
  X.inter.json                      {"user id": [item id, ...]} chronological, required
  X.item2id / X.user2id             ASIN<TAB>id / reviewerID<TAB>id, optional
  X.{train,valid,test}.inter        RecBole TSV splits, optional (else computed by leave-one-out)
  X.item.json                       {"item id": {"title", "description", "brand", "categories"}}, optional
  X.index_*.json (MQL4GRec), X.index.json (LC-Rec)   semantic IDs, optional
  X.emb-<modality>.npy              embeddings, NOT loaded here (see load_embedding)
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np

from mqlrec.data.dataset import DataError, Dataset
from mqlrec.data.embeddings import check_embedding
from mqlrec.data.files import (
    inter_tsv_text,
    read_id_map,
    read_inter_json,
    read_inter_tsv,
    read_json,
    parse_int,
    staged_dir,
    write_text_atomic,
)
from mqlrec.data.index_files import read_index, write_index
from mqlrec.data.split import MIN_SEQUENCE_LENGTH, leave_one_out

SPLITS = ("train", "valid", "test")
# Index file names written per modality (the official MQL4GRec names); read first when several exist.
INDEX_NAMES = {"text": "index_lemb", "image": "index_vitemb"}


def dataset_name(path: str) -> str:
    name = os.path.basename(os.path.normpath(path))
    if os.path.isfile(os.path.join(path, f"{name}.inter.json")):
        return name
    found = glob.glob(os.path.join(glob.escape(path), "*.inter.json"))
    if len(found) == 1:
        return os.path.basename(found[0])[: -len(".inter.json")]
    if not found:
        raise DataError(f"{os.path.join(path, name + '.inter.json')}: interaction file not found")
    raise DataError(f"{path}: several *.inter.json files and none named {name}.inter.json; which dataset?")


def _catalog_size(prefix: str, item_ids, sequences) -> tuple[int, str | None]:
    """Number of items, and the file that fixes it (None: inferred from the interactions)."""
    if item_ids is not None:
        return len(item_ids), f"{prefix}.item2id"
    for path in sorted(glob.glob(glob.escape(prefix) + ".index*.json")) + [f"{prefix}.item.json"]:
        if os.path.isfile(path):
            raw = read_json(path)
            if isinstance(raw, dict) and raw:
                return len(raw), path
    return int(max(int(s.max()) for s in sequences if len(s)) + 1), None


def _read_item_text(path: str, n_items: int) -> list[dict]:
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a JSON object item id -> {{title, description, ...}}")
    table: list[dict] = [{} for _ in range(n_items)]
    for key, value in raw.items():
        item = parse_int(key, path, "item key")
        if not 0 <= item < n_items:
            raise DataError(f"{path}: unknown item id {item} (have {n_items} items)")
        if not isinstance(value, dict):
            raise DataError(f"{path}: item {key}: expected an object with title/description/..., got {value!r:.60}")
        table[item] = value
    return table


def _read_codes(prefix: str, n_items: int) -> dict[str, np.ndarray]:
    paths = sorted(glob.glob(glob.escape(prefix) + ".index*.json"))
    preferred = [f"{prefix}.{INDEX_NAMES[m]}.json" for m in INDEX_NAMES]
    paths = [p for p in preferred if p in paths] + [p for p in paths if p not in preferred]
    codes: dict[str, np.ndarray] = {}
    for path in paths:
        modality, table = read_index(path, n_items)
        codes.setdefault(modality, table)  # the official name wins over alternatives of the same modality
    return codes


def load_dataset(path: str) -> Dataset:
    """Load a MQL4GRec- or LC-Rec-format folder; every problem is a DataError naming the file."""
    if not os.path.isdir(path):
        raise DataError(f"{path}: dataset folder not found")
    name = dataset_name(path)
    prefix = os.path.join(path, name)
    inter_path = f"{prefix}.inter.json"
    sequences = read_inter_json(inter_path)
    for user, seq in enumerate(sequences):
        if len(seq) < MIN_SEQUENCE_LENGTH:
            raise DataError(
                f"{inter_path}: user {user} has {len(seq)} item(s); every user needs at least {MIN_SEQUENCE_LENGTH}"
                " (history + valid target + test target)"
            )
    item_ids = read_id_map(f"{prefix}.item2id") if os.path.isfile(f"{prefix}.item2id") else None
    user_ids = read_id_map(f"{prefix}.user2id") if os.path.isfile(f"{prefix}.user2id") else None
    if user_ids is not None and len(user_ids) != len(sequences):
        raise DataError(f"{prefix}.user2id: has {len(user_ids)} users, {inter_path} has {len(sequences)}")

    n_items, size_source = _catalog_size(prefix, item_ids, sequences)
    seen = np.zeros(n_items, dtype=bool)
    for user, seq in enumerate(sequences):
        if seq.min() < 0 or seq.max() >= n_items:
            bad = int(seq[(seq < 0) | (seq >= n_items)][0])
            where = f" (catalog size from {size_source})" if size_source else ""
            raise DataError(f"{inter_path}: user {user}: unknown item id {bad}; ids must be in [0, {n_items}){where}")
        seen[seq] = True
    if size_source is None and not seen.all():
        missing = np.nonzero(~seen)[0][:5].tolist()
        raise DataError(f"{inter_path}: item ids are not contiguous 0..{n_items - 1} (never seen: {missing})")

    item_text = _read_item_text(f"{prefix}.item.json", n_items) if os.path.isfile(f"{prefix}.item.json") else None
    codes = _read_codes(prefix, n_items)

    split_paths = {s: f"{prefix}.{s}.inter" for s in SPLITS}
    present = [s for s, p in split_paths.items() if os.path.isfile(p)]
    if present and len(present) != len(SPLITS):
        missing = [split_paths[s] for s in SPLITS if s not in present]
        raise DataError(f"{missing[0]}: split file not found (the folder has the other split files)")
    if present:
        splits = {s: read_inter_tsv(p, n_items, len(sequences)) for s, p in split_paths.items()}
    else:
        splits = leave_one_out(sequences)
    return Dataset(
        name=name,
        sequences=sequences,
        n_items=n_items,
        item_text=item_text,
        codes=codes,
        splits=splits,
        user_ids=user_ids,
        item_ids=item_ids,
    )


def write_mqlrec(dataset: Dataset, out_dir: str) -> None:
    """Write `dataset` as a MQL4GRec folder named after out_dir; all-or-nothing (staged in a temp folder).

    Splits come from dataset.splits, else leave-one-out; embeddings go to X.emb-<modality>.npy.
    """
    dataset.validate(f"dataset {dataset.name!r}")
    for modality, table in dataset.embeddings.items():
        check_embedding(table, dataset.n_items, f"dataset {dataset.name!r} {modality} embeddings")
    name = os.path.basename(os.path.normpath(out_dir))
    splits = dataset.splits or leave_one_out(dataset.sequences)
    with staged_dir(out_dir) as tmp:
        prefix = os.path.join(tmp, name)
        inter = {str(u): seq.tolist() for u, seq in enumerate(dataset.sequences)}
        write_text_atomic(f"{prefix}.inter.json", json.dumps(inter, indent=4))
        for suffix, ids in (("item2id", dataset.item_ids), ("user2id", dataset.user_ids)):
            if ids is not None:
                write_text_atomic(f"{prefix}.{suffix}", "".join(f"{e}\t{i}\n" for i, e in enumerate(ids)))
        for split_name, split in splits.items():
            write_text_atomic(f"{prefix}.{split_name}.inter", inter_tsv_text(split))
        if dataset.item_text is not None:
            text = {str(i): entry for i, entry in enumerate(dataset.item_text)}
            write_text_atomic(f"{prefix}.item.json", json.dumps(text, ensure_ascii=False, indent=1))
        for modality, codes in dataset.codes.items():
            write_index(f"{prefix}.{INDEX_NAMES.get(modality, 'index_' + modality)}.json", modality, codes)
        for modality, table in dataset.embeddings.items():
            np.save(f"{prefix}.emb-{modality}.npy", np.asarray(table, dtype=np.float32))
