import numpy as np
import pytest

from mqlrec.language import Language, Trie


def brute_force_paths(trie: Trie):
    """Every (path, items) pair reachable in the trie, by plain recursion."""
    out = {}

    def rec(node, path):
        toks, nodes = trie.children(node)
        if len(path) == trie.depth:
            assert len(toks) == 0
            out[tuple(path)] = sorted(trie.leaf_items(node).tolist())
            return
        assert len(toks) > 0 and np.all(np.diff(toks) > 0)
        for t, n in zip(toks, nodes):
            rec(int(n), path + [int(t)])

    rec(0, [])
    return out


@pytest.mark.parametrize("seed,n,depth,k", [(0, 1, 1, 3), (1, 50, 3, 4), (2, 500, 4, 6), (3, 2000, 2, 300)])
def test_trie_matches_python_grouping(seed, n, depth, k):
    rng = np.random.default_rng(seed)
    paths = rng.integers(0, k, size=(n, depth))
    trie = Trie.build(paths)
    expected = {}
    for i, p in enumerate(map(tuple, paths)):
        expected.setdefault(p, []).append(i)
    assert brute_force_paths(trie) == expected
    assert trie.child_ptr[-1] == len(trie.child_token) == trie.n_nodes - 1
    for i in rng.choice(n, size=min(n, 20), replace=False):
        assert i in trie.leaf_items(trie.walk(paths[i]))


def test_language_token_layout_and_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    codes = {"text": rng.integers(0, 7, (30, 3)), "image": rng.integers(0, 5, (30, 4))}
    lang = Language(codes, ["seqrec", "seqimage"])
    assert lang.vocab_size == 3 + 2 + 3 * 7 + 4 * 5
    tok = lang.item_tokens("image")
    assert lang.decode(tok[0]) == [f"<{'ABCD'[l]}_{codes['image'][0, l]}>" for l in range(4)]
    assert lang.vocab[lang.task_id("seqimage")] == "<task_seqimage>"
    lang.save(str(tmp_path / "language.json"))
    again = Language.load(str(tmp_path / "language.json"))
    assert again.vocab == lang.vocab
    np.testing.assert_array_equal(again.item_tokens("text"), lang.item_tokens("text"))


def test_language_rejects_mismatched_items():
    with pytest.raises(ValueError, match="same items"):
        Language({"text": np.zeros((3, 2), int), "image": np.zeros((4, 2), int)}, [])
