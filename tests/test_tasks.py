import numpy as np
import pytest

from mqlrec.language import EOS_ID, Language
from mqlrec.tasks import ALL_TASKS, TASKS, build_samples, default_tasks, resolve_tasks


def reference_samples(sequences, language, tasks, split, max_history):
    """Plain-Python construction, written straight from the official MQL4GRec data code."""
    rows = []
    for k, name in enumerate(tasks):
        spec = TASKS[name]
        src_tok, tgt_tok = language.item_tokens(spec.source), language.item_tokens(spec.target)
        pairs = []
        if spec.kind == "sequence":
            for u, seq in enumerate(sequences):
                seq = [int(x) for x in seq]
                if split == "train":
                    items = seq[:-2]
                    for i in range(1, len(items)):
                        pairs.append((u, items[:i][-max_history:], items[i]))
                elif split == "valid" and len(seq) >= 2:
                    pairs.append((u, seq[:-2][-max_history:], seq[-2]))
                elif split == "test" and len(seq) >= 2:
                    pairs.append((u, seq[:-1][-max_history:], seq[-1]))
        elif split == "train":
            pairs = [(-1, [i], i) for i in range(language.n_items)]
        for u, hist, target in pairs:
            src = [language.task_id(name)] + [int(t) for h in hist for t in src_tok[h]] + [EOS_ID]
            tgt = [int(t) for t in tgt_tok[target]] + [EOS_ID]
            rows.append((src, tgt, k, target, u))
    return rows


def unpad(row, length=None):
    row = [int(x) for x in row]
    if length is not None:
        assert all(x == 0 for x in row[length:])
        return row[:length]
    while row and row[-1] == 0:
        row.pop()
    return row


@pytest.mark.parametrize("seed,n_users,n_items,max_history", [(0, 1, 3, 1), (1, 37, 11, 3), (2, 120, 250, 20), (3, 9, 5, 7)])
@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_samples_match_python_reference(seed, n_users, n_items, max_history, split):
    rng = np.random.default_rng(seed)
    sequences = [rng.integers(0, n_items, size=rng.integers(2, 40)).astype(np.int32) for _ in range(n_users)]
    # different depths per modality exercise the padding of mixed-length sources and targets
    codes = {"text": rng.integers(0, 6, (n_items, 4)), "image": rng.integers(0, 9, (n_items, 3))}
    lang = Language(codes, ALL_TASKS)
    tasks = ["seqrec", "image2item", "seqimage", "seqitem2image", "item2image", "seqimage2item"]
    got = build_samples(sequences, lang, tasks, split=split, max_history=max_history)
    want = reference_samples(sequences, lang, tasks, split, max_history)
    assert len(got) == len(want)
    for i, (src, tgt, k, target, u) in enumerate(want):
        assert unpad(got.src[i], got.src_len[i]) == src
        assert unpad(got.tgt[i]) == tgt
        assert (got.task[i], got.item[i], got.user[i]) == (k, target, u)
    assert got.src.dtype == np.int32 and got.tgt.dtype == np.int32


def test_user_subset_and_empty_valid_history():
    lang = Language({"text": np.arange(8)[:, None] % 3}, ALL_TASKS)
    sequences = [np.array([1, 2]), np.array([3, 4, 5, 6, 7])]
    valid = build_samples(sequences, lang, ["seqrec"], split="valid")
    # a 2-item user has an empty valid history: the prompt is just [task, eos]
    assert unpad(valid.src[0], valid.src_len[0]) == [lang.task_id("seqrec"), EOS_ID]
    test = build_samples(sequences, lang, ["seqrec"], split="test", users=np.array([1]))
    assert test.user.tolist() == [1] and test.item.tolist() == [7]


def test_bad_inputs():
    lang = Language({"text": np.zeros((4, 2), dtype=np.int64) + np.arange(4)[:, None]}, ALL_TASKS)
    with pytest.raises(ValueError, match="outside"):
        build_samples([np.array([0, 1, 9])], lang, ["seqrec"])
    with pytest.raises(ValueError, match="unknown task"):
        resolve_tasks(["seqrec", "nope"], ["text"])
    with pytest.raises(ValueError, match="image"):
        resolve_tasks(["fusionseqrec"], ["text"])
    assert resolve_tasks(["fusionseqrec", "seqitem2image"], ["text", "image"]) == ["seqitem2image", "seqimage2item"]
    assert default_tasks(["text"]) == ["seqrec"]
    assert len(default_tasks(["text", "image"])) == 6
