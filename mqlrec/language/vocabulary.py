"""The quantitative language: a compact vocabulary of special, task and code tokens.

Token ids: pad 0, eos 1, unk 2, then one prompt token per task, then per modality and level K
code tokens. Code token (modality m, level l, code c) has id offset[m][l] + c (DESIGN.md contract).
Text codes are written a_12 b_7 ..., image codes A_12 B_7 ... (as in the official index files).
"""

from __future__ import annotations

import json
import os
import string

import numpy as np

from mqlrec.language.trie import Trie

SPECIAL_TOKENS = ["<pad>", "</s>", "<unk>"]
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
LEVEL_LETTERS = {"text": string.ascii_lowercase, "image": string.ascii_uppercase}


class Language:
    def __init__(self, codes: dict[str, np.ndarray], tasks: list[str], n_codes: dict[str, int] | None = None):
        """codes: modality -> [N, L] int codes (same N for every modality); tasks: prompt token names."""
        if not codes:
            raise ValueError("Language needs the codes of at least one modality")
        unknown = set(codes) - set(LEVEL_LETTERS)
        if unknown:
            raise ValueError(f"unknown modalities {sorted(unknown)}; known: {sorted(LEVEL_LETTERS)}")
        self.modalities = [m for m in LEVEL_LETTERS if m in codes]  # fixed order: text, image
        self.codes = {m: np.asarray(codes[m], dtype=np.int64) for m in self.modalities}
        n_items = {c.shape[0] for c in self.codes.values()}
        if len(n_items) != 1:
            raise ValueError(f"every modality must index the same items, got item counts {sorted(n_items)}")
        self.n_items = n_items.pop()
        self.n_levels = {m: int(self.codes[m].shape[1]) for m in self.modalities}
        self.n_codes = {
            m: int((n_codes or {}).get(m, int(self.codes[m].max()) + 1)) for m in self.modalities
        }
        for m in self.modalities:
            if self.codes[m].min() < 0 or self.codes[m].max() >= self.n_codes[m]:
                raise ValueError(f"{m} codes must lie in [0, {self.n_codes[m]})")
        self.tasks = list(tasks)
        self.vocab = list(SPECIAL_TOKENS) + [f"<task_{t}>" for t in self.tasks]
        self.offsets: dict[str, list[int]] = {}
        for m in self.modalities:
            letters = LEVEL_LETTERS[m]
            self.offsets[m] = []
            for level in range(self.n_levels[m]):
                self.offsets[m].append(len(self.vocab))
                self.vocab += [f"<{letters[level]}_{c}>" for c in range(self.n_codes[m])]
        self.token_to_id = {t: i for i, t in enumerate(self.vocab)}
        self._tries: dict[str, Trie] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def task_id(self, task: str) -> int:
        try:
            return self.token_to_id[f"<task_{task}>"]
        except KeyError:
            raise KeyError(f"task {task!r} is not in this language's tasks {self.tasks}") from None

    def item_tokens(self, modality: str) -> np.ndarray:
        """[N, L] token ids of every item's code path in one modality."""
        offs = np.asarray(self.offsets[modality], dtype=np.int64)
        return self.codes[modality] + offs[None, :]

    def code_token_range(self, modality: str, level: int) -> tuple[int, int]:
        start = self.offsets[modality][level]
        return start, start + self.n_codes[modality]

    def trie(self, modality: str) -> Trie:
        if modality not in self._tries:
            self._tries[modality] = Trie.build(self.item_tokens(modality))
        return self._tries[modality]

    def decode(self, token_ids) -> list[str]:
        return [self.vocab[int(t)] for t in token_ids]

    # --- persistence: one JSON file next to the HF checkpoint ---
    def to_dict(self) -> dict:
        return {
            "tasks": self.tasks,
            "n_codes": self.n_codes,
            "codes": {m: self.codes[m].tolist() for m in self.modalities},
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Language":
        return cls({m: np.asarray(c) for m, c in d["codes"].items()}, d["tasks"], d.get("n_codes"))

    def save(self, path: str) -> None:
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.to_dict(), f)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> "Language":
        with open(path) as f:
            return cls.from_dict(json.load(f))
