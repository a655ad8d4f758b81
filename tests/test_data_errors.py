"""Bad input in the MQL4GRec / LC-Rec folders and embedding files: one DataError naming the file (and line)."""

import json
import os

import numpy as np
import pytest

from mqlrec.data import DataError, load_dataset, load_embedding, write_mqlrec
from mqlrec.data.files import INTER_HEADER
from mqlrec.data.synthetic import make_synthetic

GOOD_INTER = {"0": [0, 1, 2, 3], "1": [2, 3, 4], "2": [4, 1, 0, 2]}


def _folder(tmp_path, files, name="D"):
    folder = tmp_path / name
    folder.mkdir()
    for suffix, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content)
        (folder / f"{name}{suffix}").write_text(text)
    return str(folder)


def _splits(train_rows, valid_rows=("0\t0 1 2\t3",), test_rows=("0\t0 1 2\t3",)):
    return {f".{s}.inter": "\n".join([INTER_HEADER, *rows]) + "\n"
            for s, rows in (("train", train_rows), ("valid", valid_rows), ("test", test_rows))}


CASES = {
    "no folder": (None, r"nowhere: dataset folder not found"),
    "no inter.json": ({".item2id": "A\t0\n"}, r"D\.inter\.json: interaction file not found"),
    "malformed json": ({".inter.json": '{\n "0": [0, 1,\n 2 3]\n}'}, r"D\.inter\.json: malformed JSON at line 3"),
    "not an object": ({".inter.json": [[0, 1, 2]]}, r"D\.inter\.json: expected a non-empty JSON object"),
    "non-int item": ({".inter.json": {"0": [0, "x", 1]}}, r"D\.inter\.json: user 0: expected an integer id, got 'x'"),
    "empty sequence": ({".inter.json": {"0": [0, 1, 2], "1": []}}, r"D\.inter\.json: user 1 has 0 item\(s\)"),
    "one-item sequence": ({".inter.json": {"0": [0, 1, 2], "1": [1]}}, r"D\.inter\.json: user 1 has 1 item\(s\)"),
    "user gap": ({".inter.json": {"0": [0, 1, 2], "2": [2, 1, 0]}}, r"D\.inter\.json: user ids must be exactly 0\.\.1"),
    "item gap": ({".inter.json": {"0": [0, 1, 3], "1": [3, 1, 0]}}, r"D\.inter\.json: item ids are not contiguous 0\.\.3 \(never seen: \[2\]\)"),
    "negative item": ({".inter.json": {"0": [0, 1, -1]}}, r"D\.inter\.json: user 0: unknown item id -1"),
    "unknown item": ({".inter.json": GOOD_INTER, ".item2id": "A\t0\nB\t1\nC\t2\nD\t3\n"},
                     r"D\.inter\.json: user 1: unknown item id 4; ids must be in \[0, 4\) \(catalog size from .*D\.item2id\)"),
    "bad id map line": ({".inter.json": GOOD_INTER, ".item2id": "A\t0\nB 1\n"}, r"D\.item2id: line 2: expected"),
    "id map gap": ({".inter.json": GOOD_INTER, ".item2id": "A\t0\nB\t2\n"}, r"D\.item2id: ids must be exactly 0\.\.1"),
    "user map size": ({".inter.json": GOOD_INTER, ".user2id": "a\t0\n"}, r"D\.user2id: has 1 users"),
    "bad header": ({".inter.json": GOOD_INTER, **_splits(["0\t0\t1"]), ".train.inter": "user\titems\titem\n0\t0\t1\n"},
                   r"D\.train\.inter: line 1: expected header"),
    "tsv fields": ({".inter.json": GOOD_INTER, **_splits(["0\t0\t1", "0\t0 1"])}, r"D\.train\.inter: line 3: expected 3 tab-separated fields, got 2"),
    "tsv non-int": ({".inter.json": GOOD_INTER, **_splits(["0\t0 z\t1"])}, r"D\.train\.inter: line 2: ids must be integers"),
    "tsv unknown item": ({".inter.json": GOOD_INTER, **_splits(["0\t0\t1"], test_rows=["0\t0 1\t9"])},
                         r"D\.test\.inter: line 2: unknown item id 9"),
    "tsv unknown user": ({".inter.json": GOOD_INTER, **_splits(["7\t0\t1"])}, r"D\.train\.inter: line 2: unknown user id 7"),
    "tsv empty history": ({".inter.json": GOOD_INTER, **_splits(["0\t\t1"])}, r"D\.train\.inter: line 2: empty item history"),
    "one split missing": ({".inter.json": GOOD_INTER, ".train.inter": INTER_HEADER + "\n0\t0\t1\n"},
                          r"D\.valid\.inter: split file not found"),
    "item.json unknown id": ({".inter.json": GOOD_INTER, ".item2id": "A\t0\nB\t1\nC\t2\nD\t3\nE\t4\n",
                              ".item.json": {"9": {"title": "x"}}}, r"D\.item\.json: unknown item id 9"),
    "bad index token": ({".inter.json": GOOD_INTER, ".index.json": {str(i): [f"<a_{i}>", "b_1"] for i in range(5)}},
                        r"D\.index\.json: item 0: bad token 'b_1'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_folder_raises_one_clear_error(tmp_path, case):
    files, message = CASES[case]
    path = str(tmp_path / "nowhere") if files is None else _folder(tmp_path, files)
    with pytest.raises(DataError, match=message):
        load_dataset(path)


def test_good_folder_with_split_files_loads(tmp_path):
    # the same folder as the TSV cases, minus the defect: proves the cases fail for the stated reason
    ds = load_dataset(_folder(tmp_path, {".inter.json": GOOD_INTER, **_splits(["0\t0\t1", "2\t4\t1"])}))
    assert ds.n_items == 5 and ds.splits["train"].targets.tolist() == [1, 1]


def _npy(tmp_path, array, name="e.npy"):
    path = str(tmp_path / name)
    np.save(path, array)
    return path


def test_embedding_checks(tmp_path):
    good = np.random.default_rng(0).normal(size=(7, 5))
    table = load_embedding(_npy(tmp_path, good), 7)
    assert table.dtype == np.float32 and table.flags.c_contiguous and np.allclose(table, good)
    with pytest.raises(DataError, match=r"e\.npy: embedding table has shape \(6, 5\), need \[7, D\]"):
        load_embedding(_npy(tmp_path, good[:6]), 7)
    with pytest.raises(DataError, match=r"shape \(7,\)"):
        load_embedding(_npy(tmp_path, good[:, 0]), 7)
    for bad_value, row in ((np.nan, 3), (np.inf, 6), (-np.inf, 0)):
        bad = good.copy()
        bad[row, 2] = bad_value
        with pytest.raises(DataError, match=rf"e\.npy: embedding table has NaN or inf \(first at row {row}\)"):
            load_embedding(_npy(tmp_path, bad), 7)
    with pytest.raises(DataError, match=r"beyond float32"):  # finite float64 that overflows float32
        load_embedding(_npy(tmp_path, np.full((7, 2), 1e300)), 7)
    with pytest.raises(DataError, match=r"missing\.npy: embedding file not found"):
        load_embedding(str(tmp_path / "missing.npy"), 7)
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match=r"junk\.npy: not a readable \.npy array"):
        load_embedding(str(tmp_path / "junk.npy"), 7)
    with pytest.raises(DataError, match=r"o\.npy: not a readable \.npy array"):
        load_embedding(_npy(tmp_path, np.array([{"a": 1}], dtype=object), "o.npy"), 1)


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    import mqlrec.data.mqlrec_format as fmt

    ds = make_synthetic(seed=0, n_items=80, n_users=60)
    ds.codes = {"text": np.zeros((80, 2), dtype=np.int64)}

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(fmt, "write_index", boom)  # fails after the other files were written
    with pytest.raises(OSError, match="disk full"):
        write_mqlrec(ds, str(tmp_path / "New"))
    assert os.listdir(tmp_path) == []  # no folder, no staging leftovers
    existing = tmp_path / "Old"
    existing.mkdir()
    (existing / "Old.inter.json").write_text("keep me")
    with pytest.raises(OSError, match="disk full"):
        write_mqlrec(ds, str(existing))
    assert os.listdir(tmp_path) == ["Old"] and os.listdir(existing) == ["Old.inter.json"]
    assert (existing / "Old.inter.json").read_text() == "keep me"


def test_write_rejects_bad_dataset(tmp_path):
    ds = make_synthetic(seed=0, n_items=80, n_users=60)
    ds.embeddings["image"][5, 1] = np.nan
    with pytest.raises(DataError, match="image embeddings contain NaN or inf"):
        write_mqlrec(ds, str(tmp_path / "X"))
    assert os.listdir(tmp_path) == []
