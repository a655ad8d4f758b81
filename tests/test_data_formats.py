"""Readers/writers of the MQL4GRec and LC-Rec folders, on the real datasets and on small made-up ones."""

import json
import os

import numpy as np
import pytest

from conftest import SHARED_DATA
from mqlrec.data import leave_one_out, load_dataset, load_embedding, write_mqlrec
from mqlrec.data.synthetic import make_synthetic

needs_shared = pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason=f"shared datasets not found at {SHARED_DATA}")

# The papers' Table 1 (users, items, interactions).
TABLE_1 = {"Instruments": (17112, 6250, 136226), "Arts": (22171, 9416, 174079), "Games": (42259, 13839, 373514)}


@needs_shared
@pytest.mark.parametrize("name", sorted(TABLE_1))
def test_real_dataset_counts_equal_table_1(name):
    ds = load_dataset(os.path.join(SHARED_DATA, name))
    assert ds.name == name
    assert (ds.n_users, ds.n_items, ds.n_interactions) == TABLE_1[name]
    assert min(len(s) for s in ds.sequences) >= 5
    # every item id appears and the splits cover every user once in valid and test
    assert len(np.unique(np.concatenate(ds.sequences))) == ds.n_items
    assert np.array_equal(ds.splits["test"].users, np.arange(ds.n_users))


def _split_rows(split):
    return [(int(u), tuple(h.tolist()), int(t)) for u, h, t in zip(split.users, split.histories, split.targets)]


@needs_shared
def test_leave_one_out_reproduces_official_instruments_files_exactly():
    ds = load_dataset(os.path.join(SHARED_DATA, "Instruments"))  # splits read from the official .inter files
    ours = leave_one_out(ds.sequences)
    for name in ("train", "valid", "test"):
        official = _split_rows(ds.splits[name])
        assert len(official) == {"train": 84890, "valid": 17112, "test": 17112}[name]
        # same rows in the same order (the official file: users ascending, longest prefix first)
        assert _split_rows(ours[name]) == official


@needs_shared
def test_instruments_codes_and_ids():
    ds = load_dataset(os.path.join(SHARED_DATA, "Instruments"))
    assert set(ds.codes) == {"text", "image"}
    for codes in ds.codes.values():
        assert codes.shape == (6250, 4) and codes.min() >= 0 and codes.max() < 256
    # known facts from data/README.md: text index 5,988 unique codes, image index collision-free
    assert len({tuple(r) for r in ds.codes["text"]}) == 5988
    assert len({tuple(r) for r in ds.codes["image"]}) == 6250
    assert ds.item_ids[0] == "B002SQJL9U" and ds.user_ids[0] == "A3LXYBBLOOEOMQ"
    emb = load_embedding(os.path.join(SHARED_DATA, "Instruments", "Instruments.emb-sasrec32-lcrec.npy"), ds.n_items)
    assert emb.shape == (6250, 32) and emb.dtype == np.float32


def test_write_then_load_round_trips(tmp_path):
    ds = make_synthetic(seed=3, n_items=120, n_users=200)
    ds.codes = {"text": np.random.default_rng(0).integers(0, 7, (120, 3)), "image": np.arange(240).reshape(120, 2)}
    out = tmp_path / "Toy"
    write_mqlrec(ds, str(out))
    back = load_dataset(str(out))
    assert back.name == "Toy"
    assert back.n_items == ds.n_items and back.user_ids == ds.user_ids and back.item_ids == ds.item_ids
    assert all(np.array_equal(a, b) for a, b in zip(back.sequences, ds.sequences))
    assert back.item_text == ds.item_text
    for m in ds.codes:
        assert np.array_equal(back.codes[m], ds.codes[m])
    for name in ("train", "valid", "test"):
        assert _split_rows(back.splits[name]) == _split_rows(ds.splits[name])
    for m, table in ds.embeddings.items():
        assert np.array_equal(load_embedding(str(out / f"Toy.emb-{m}.npy"), ds.n_items), table)
    assert not [p for p in os.listdir(tmp_path) if p != "Toy"]  # no staging leftovers


def _write_lcrec(folder, inter, index=None, items=None):
    folder.mkdir()
    name = folder.name
    (folder / f"{name}.inter.json").write_text(json.dumps(inter))
    if index is not None:
        (folder / f"{name}.index.json").write_text(json.dumps(index))
    if items is not None:
        (folder / f"{name}.item.json").write_text(json.dumps(items))


def test_lcrec_folder_reads_inter_index_and_item_text(tmp_path):
    inter = {"0": [0, 1, 2, 3], "1": [3, 2, 4], "2": [4, 0, 1, 5]}
    index = {str(i): [f"<a_{i}>", f"<b_{(i * 7) % 5}>", f"<c_{i % 2}>"] for i in range(6)}
    items = {str(i): {"title": f"t{i}", "description": ""} for i in range(6)}
    _write_lcrec(tmp_path / "Lc", inter, index, items)
    ds = load_dataset(str(tmp_path / "Lc"))
    assert ds.n_items == 6 and ds.n_users == 3
    assert ds.codes["text"][:, 0].tolist() == list(range(6))
    assert ds.item_text[5]["title"] == "t5"
    # no split files: splits are the leave-one-out of the sequences
    assert _split_rows(ds.splits["test"]) == [(0, (0, 1, 2), 3), (1, (3, 2), 4), (2, (4, 0, 1), 5)]
    assert _split_rows(ds.splits["train"]) == [(0, (0,), 1), (2, (4,), 0)]


def test_catalog_size_comes_from_index_so_unused_items_are_allowed(tmp_path):
    index = {str(i): [f"<a_{i}>"] for i in range(8)}
    _write_lcrec(tmp_path / "Big", {"0": [0, 1, 2], "1": [2, 1, 0]}, index)
    assert load_dataset(str(tmp_path / "Big")).n_items == 8


def test_leave_one_out_caps_history():
    seq = np.arange(60, dtype=np.int32)
    splits = leave_one_out([seq], max_history=50)
    assert len(splits["train"].targets) == 57
    first = splits["train"]
    assert first.targets[0] == 57 and first.histories[0].tolist() == list(range(7, 57))
    assert first.targets[-1] == 1 and first.histories[-1].tolist() == [0]
    assert splits["test"].histories[0].tolist() == list(range(9, 59))
    assert splits["valid"].targets[0] == 58
