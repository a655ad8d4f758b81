"""Beam search / exact search vs brute force, the plain reference, and Hugging Face generate."""

import os

import numpy as np
import pytest
import torch
from transformers import T5Config, T5ForConditionalGeneration

from mqlrec.generate import Ranking, beam_search
from mqlrec.generate.ranking import distinct_leaves
from mqlrec.generate.t5_decoder import T5BeamDecoder
from mqlrec.data import read_index
from mqlrec.generate.reference import (exact_from_scores, hf_prefix_allowed_tokens, leaf_paths,
                                       reference_beam_search, score_all_leaves)
from mqlrec.model.t5 import ModelConfig, build_model
from mqlrec.language import Language, Trie

from conftest import SHARED_DATA


def tiny_model(vocab, seed=0, layers=2):
    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=vocab, d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=layers,
                   num_decoder_layers=layers, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return T5ForConditionalGeneration(cfg).eval()


def tiny_case(seed, n_items, levels, n_codes, users=3, collisions=False):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, n_codes, (n_items, levels))
    if collisions:
        codes[1::4] = codes[0::4][: len(codes[1::4])]
    lang = Language({"text": codes}, ["seqrec"], n_codes={"text": n_codes})
    model = tiny_model(lang.vocab_size, seed)
    ids = torch.as_tensor(rng.integers(3, lang.vocab_size, (users, 7)))
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0  # a padded user
    ids[0, 5:] = 0
    return lang, model, ids, mask


def hf_generate(model, ids, mask, trie, W):
    out = model.generate(input_ids=ids, attention_mask=mask, num_beams=W, num_return_sequences=W,
                         max_new_tokens=trie.depth + 1, prefix_allowed_tokens_fn=hf_prefix_allowed_tokens(trie),
                         output_scores=True, return_dict_in_generate=True, length_penalty=1.0,
                         early_stopping=True, do_sample=False)
    seqs = out.sequences.reshape(ids.shape[0], W, -1)[:, :, 1 : trie.depth + 1].numpy()
    leaves = np.array([[trie.walk(s) for s in row] for row in seqs])
    return leaves, out.sequences_scores.reshape(ids.shape[0], W).numpy()


def leaves_of(ranking: Ranking, trie: Trie, lang: Language, modality="text"):
    leaves, scores = distinct_leaves(ranking, trie, lang.item_tokens(modality))
    return np.array(leaves), np.array(scores)


def assert_real_items(ranking: Ranking, n_items):
    for row in ranking.items:
        valid = row[row >= 0]
        assert len(valid) == len(set(valid.tolist())), "an item appears twice in a row"
        assert ((valid >= 0) & (valid < n_items)).all()
        assert (row[len(valid):] == -1).all(), "padding must come last"


@pytest.mark.parametrize("normalise", ["full", "level"])
@pytest.mark.parametrize("seed,levels,n_codes", [(0, 1, 9), (1, 2, 5), (2, 3, 4), (3, 4, 3)])
def test_wide_beam_equals_brute_force(seed, levels, n_codes, normalise):
    lang, model, ids, mask = tiny_case(seed, 30, levels, n_codes, collisions=seed % 2 == 1)
    trie = lang.trie("text")
    n_leaves = len(leaf_paths(trie)[0])
    leaves, scores = score_all_leaves(model, ids, mask, trie, normalise)
    want = exact_from_scores(trie, leaves, scores, n_leaves)
    for step in ["torch", "cpp"]:
        got = beam_search(model, ids, mask, trie, beam_width=n_leaves + 3, step=step, normalise=normalise)
        np.testing.assert_array_equal(got.items, want.items)
        np.testing.assert_allclose(got.scores, want.scores, atol=2e-6)
        assert_real_items(got, lang.n_items)
    # exact search with a small K = the brute-force top-K
    k = min(4, n_leaves)
    ex = beam_search(model, ids, mask, trie, beam_width=k, search="exact", normalise=normalise)
    top = exact_from_scores(trie, leaves, scores, k)
    np.testing.assert_array_equal(ex.items, top.items)
    np.testing.assert_allclose(ex.scores, top.scores, atol=2e-6)


@pytest.mark.parametrize("normalise", ["full", "level"])
def test_exact_search_is_exact_where_beam_search_misses(normalise):
    # the exact search prunes with the K-th score of a K-beam search; where that beam search misses
    # part of the true top-K the bound is loose, and the result must still be the brute-force top-K
    misses = 0
    for seed in range(6):
        lang, model, ids, mask = tiny_case(40 + seed, 60, 3, 5, users=4, collisions=seed % 2 == 0)
        trie = lang.trie("text")
        leaves, scores = score_all_leaves(model, ids, mask, trie, normalise)
        want = exact_from_scores(trie, leaves, scores, 3)
        beam = beam_search(model, ids, mask, trie, beam_width=3, normalise=normalise)
        got = beam_search(model, ids, mask, trie, beam_width=3, search="exact", normalise=normalise)
        np.testing.assert_array_equal(got.items, want.items)
        np.testing.assert_allclose(got.scores, want.scores, atol=2e-6)
        misses += int((beam.items[:, :3] != want.items[:, :3]).any(1).sum())
    assert misses > 0, "no case where beam search misses the top-K: the test would not exercise a loose bound"


@pytest.mark.parametrize("capacity", [1, 2, 8])
def test_decoder_cache_reorder_and_growth_equal_decoding_each_prefix_afresh(capacity):
    # steps with random parent beams (and a cache that must grow when capacity is small) give the
    # hidden states of decoding each beam's whole prefix from scratch
    lang, model, ids, mask = tiny_case(51, 40, 3, 5, users=3)
    dec = T5BeamDecoder(model)
    rng = np.random.default_rng(51)
    B, W, steps = ids.shape[0], 4, 5
    state = dec.encode(ids, mask, capacity=capacity)
    prefixes = np.zeros((B, 1, 1), dtype=np.int64)  # decoder start
    tokens, parent = torch.zeros(B, 1, dtype=torch.long), None
    for t in range(steps):
        hidden = dec.step(state, tokens, parent)
        fresh = dec.last_hidden(state, torch.as_tensor(prefixes), torch.arange(B))
        torch.testing.assert_close(hidden, fresh, atol=1e-5, rtol=1e-5)
        parent = torch.as_tensor(rng.integers(0, prefixes.shape[1], (B, W)))
        tokens = torch.as_tensor(rng.integers(3, lang.vocab_size, (B, W)))
        prefixes = np.concatenate([np.take_along_axis(prefixes, parent.numpy()[:, :, None], 1), tokens.numpy()[:, :, None]], 2)


def test_collisions_contribute_every_item_with_the_leaf_score():
    lang, model, ids, mask = tiny_case(5, 24, 2, 4, collisions=True)
    trie = lang.trie("text")
    r = beam_search(model, ids, mask, trie, beam_width=3)
    tokens = lang.item_tokens("text")
    for b in range(len(r)):
        row = r.items[b][r.items[b] >= 0]
        leaves = [trie.walk(tokens[i]) for i in row]
        assert len(set(leaves)) == 3
        for leaf in set(leaves):
            members = row[[x == leaf for x in leaves]]
            assert sorted(members.tolist()) == sorted(trie.leaf_items(leaf).tolist())
            assert len(set(r.scores[b][np.isin(r.items[b], members)].tolist())) == 1
    assert r.items.shape[1] > 3  # collisions made rows longer than the beam


@pytest.mark.parametrize("normalise", ["full", "level"])
def test_fast_equals_reference_beam_search(normalise):
    lang, model, ids, mask = tiny_case(11, 200, 3, 7, users=4)
    trie = lang.trie("text")
    want = reference_beam_search(model, ids, mask, trie, beam_width=6, normalise=normalise)
    got = beam_search(model, ids, mask, trie, beam_width=6, normalise=normalise, batch_size=3)
    np.testing.assert_array_equal(got.items, want.items)
    np.testing.assert_allclose(got.scores, want.scores, atol=2e-6)


@pytest.mark.parametrize("search", ["beam", "exact"])
@pytest.mark.parametrize("batch_size", [1, 2, 5, None])
def test_users_of_any_length_get_their_unbatched_result(search, batch_size):
    # users are sorted by source length, chunked and trimmed of padding columns; every user must still
    # get exactly what it gets alone and unpadded, in the caller's order
    lang, model, _, _ = tiny_case(31, 120, 3, 6)
    rng = np.random.default_rng(31)
    lengths = rng.permutation([1, 3, 4, 6, 8, 11, 12])
    ids = torch.zeros(len(lengths), 12, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for u, n in enumerate(lengths):
        ids[u, :n] = torch.as_tensor(rng.integers(3, lang.vocab_size, n))
        mask[u, :n] = 1
    trie = lang.trie("text")
    got = beam_search(model, ids, mask, trie, beam_width=5, search=search, batch_size=batch_size)
    for u, n in enumerate(lengths):
        alone = beam_search(model, ids[u : u + 1, :n], mask[u : u + 1, :n], trie, beam_width=5, search=search)
        k = alone.items.shape[1]
        np.testing.assert_array_equal(got.items[u, :k], alone.items[0])
        assert (got.items[u, k:] == -1).all()
        np.testing.assert_allclose(got.scores[u, :k], alone.scores[0], atol=2e-6)


@pytest.mark.parametrize("W", [2, 5, 8])  # HF with num_beams=1 is greedy search, not beam search
def test_equals_hugging_face_generate(W):
    lang, model, ids, mask = tiny_case(21, 300, 3, 9, users=3)
    trie = lang.trie("text")
    hf_leaves, hf_scores = hf_generate(model, ids, mask, trie, W)
    got = beam_search(model, ids, mask, trie, beam_width=W)
    leaves, scores = leaves_of(got, trie, lang)
    np.testing.assert_array_equal(leaves, hf_leaves)
    np.testing.assert_allclose(scores, hf_scores, atol=1e-5)


@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED_DATA, "Instruments")),
                    reason="shared data folder with Instruments is absent")
def test_official_size_model_on_instruments_codes_equals_hugging_face():
    codes = {m: read_index(os.path.join(SHARED_DATA, "Instruments", f"Instruments.{f}.json"))[1]
             for m, f in [("text", "index_lemb"), ("image", "index_vitemb")]}
    lang = Language(codes, ["seqrec", "seqimage"], n_codes={"text": 256, "image": 256})
    torch.manual_seed(0)
    model = build_model(ModelConfig(), lang.vocab_size).eval()  # official size
    rng = np.random.default_rng(0)
    tokens = lang.item_tokens("image")
    hist = tokens[rng.integers(0, lang.n_items, (2, 20))].reshape(2, -1)
    ids = torch.as_tensor(np.concatenate([np.full((2, 1), lang.task_id("seqimage")), hist, np.ones((2, 1), int)], 1))
    mask = torch.ones_like(ids)
    trie = lang.trie("image")
    hf_leaves, hf_scores = hf_generate(model, ids, mask, trie, 20)
    got = beam_search(model, ids, mask, trie, beam_width=20)
    leaves, scores = leaves_of(got, trie, lang, "image")  # the image index is collision-free
    np.testing.assert_array_equal(leaves, hf_leaves)
    np.testing.assert_allclose(scores, hf_scores, atol=1e-5)
    np.testing.assert_allclose(got.scores, hf_scores, atol=1e-5)
    assert_real_items(got, lang.n_items)


def test_more_beams_than_items_pads_without_crashing():
    lang, model, ids, mask = tiny_case(3, 5, 2, 3)
    trie = lang.trie("text")
    r = beam_search(model, ids, mask, trie, beam_width=50)
    n = lang.n_items
    assert r.items.shape == (3, n) and (r.items >= 0).all()  # 5 items, all returned
    r = beam_search(model, ids, mask, trie, beam_width=50, search="exact")
    assert r.items.shape == (3, n) and (r.items >= 0).all()


def test_bad_arguments_raise_clear_errors():
    lang, model, ids, mask = tiny_case(4, 10, 2, 3)
    trie = lang.trie("text")
    with pytest.raises(ValueError, match="beam_width"):
        beam_search(model, ids, mask, trie, beam_width=0)
    with pytest.raises(ValueError, match="normalise"):
        beam_search(model, ids, mask, trie, normalise="softmax")
    with pytest.raises(ValueError, match="search"):
        beam_search(model, ids, mask, trie, search="greedy")
    with pytest.raises(ValueError, match="attention_mask"):
        beam_search(model, ids, mask[:, :3], trie)
    big = Trie.build(np.array([[model.config.vocab_size + 5]]))
    with pytest.raises(ValueError, match="outside"):
        beam_search(model, ids, mask, big)
