"""Per-modality trie of all items' token paths as flat CSR arrays (the DESIGN.md contract).

Root = node 0, nodes numbered breadth-first in lexicographic order, all leaves at depth L.
Edge e goes to node e + 1, so child_node is just an arange; it is stored anyway because the
beam-search kernels take the arrays as given by the contract.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Trie:
    child_ptr: np.ndarray  # [n_nodes + 1] int32
    child_token: np.ndarray  # [n_edges] int32, ascending within a node
    child_node: np.ndarray  # [n_edges] int32
    item_ptr: np.ndarray  # [n_nodes + 1] int32
    items: np.ndarray  # [n_items] int32, the items of each leaf
    depth: int  # L, the path length

    @property
    def n_nodes(self) -> int:
        return len(self.child_ptr) - 1

    def children(self, node: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.child_ptr[node], self.child_ptr[node + 1]
        return self.child_token[lo:hi], self.child_node[lo:hi]

    def leaf_items(self, node: int) -> np.ndarray:
        return self.items[self.item_ptr[node] : self.item_ptr[node + 1]]

    def walk(self, tokens) -> int:
        """Node reached by a token prefix, or -1 when the prefix is not in the trie."""
        node = 0
        for t in tokens:
            toks, nodes = self.children(node)
            i = np.searchsorted(toks, t)
            if i == len(toks) or toks[i] != t:
                return -1
            node = int(nodes[i])
        return node

    @classmethod
    def build(cls, paths: np.ndarray) -> "Trie":
        """Build from token paths [N, L] (row = item id); rows may repeat (collisions share a leaf)."""
        paths = np.asarray(paths, dtype=np.int64)
        if paths.ndim != 2 or paths.shape[0] == 0 or paths.shape[1] == 0:
            raise ValueError(f"Trie.build needs paths [N>0, L>0], got {paths.shape}")
        n, depth = paths.shape
        order = np.lexsort(paths.T[::-1])  # lexicographic, stable: equal paths keep item order
        sorted_paths = paths[order]
        node_of_row = np.zeros(n, dtype=np.int64)  # node id of each sorted row's prefix at the current depth
        tokens = []  # token of every non-root node, in node-id order
        parents = []
        next_id = 1
        for k in range(depth):
            differs = np.ones(n, dtype=bool)
            differs[1:] = (sorted_paths[1:, : k + 1] != sorted_paths[:-1, : k + 1]).any(axis=1)
            starts = np.flatnonzero(differs)
            ids = next_id + np.cumsum(differs) - 1
            tokens.append(sorted_paths[starts, k])
            parents.append(node_of_row[starts])
            node_of_row = ids
            next_id += len(starts)
        n_nodes = next_id
        child_token = np.concatenate(tokens).astype(np.int32)
        parent = np.concatenate(parents)
        child_ptr = np.zeros(n_nodes + 1, dtype=np.int64)
        np.add.at(child_ptr, parent + 1, 1)
        child_ptr = np.cumsum(child_ptr).astype(np.int32)
        item_count = np.bincount(node_of_row, minlength=n_nodes)
        item_ptr = np.concatenate([[0], np.cumsum(item_count)]).astype(np.int32)
        return cls(
            child_ptr=child_ptr,
            child_token=child_token,
            child_node=np.arange(1, n_nodes, dtype=np.int32),
            item_ptr=item_ptr,
            items=order.astype(np.int32),  # sorted rows grouped by leaf, leaves in node order
            depth=depth,
        )
