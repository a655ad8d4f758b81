// Trie-constrained beam step, one batch row at a time (the DESIGN.md beam-step contract).
// Shared by the C++ (OpenMP) entry point; the CUDA kernel follows the same rules.
//
// Candidates are (beam w, child edge e of node[w]) with score[w] + logp[w, child_token[e] - token_offset].
// Order: higher score first; ties: lower parent beam, then lower token (= lower edge, tokens ascend
// within a node). A candidate whose score is -inf or NaN is no candidate. Fewer than w_out
// candidates -> the remaining outputs are dead (score -inf, node -1, parent -1, token -1).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace mqlrec {

struct BeamCandidate {
  float score;
  int32_t beam;
  int32_t edge;
};

// True when a ranks before b.
inline bool candidate_before(const BeamCandidate& a, const BeamCandidate& b) {
  if (a.score != b.score) return a.score > b.score;
  if (a.beam != b.beam) return a.beam < b.beam;
  return a.edge < b.edge;
}

// Returns 0 on success, 1 when a node id is out of range, 2 when a child token falls outside logp.
inline int beam_step_row(const float* logp, const float* score, const int32_t* node, int64_t w_in, int64_t vocab,
                         const int32_t* child_ptr, const int32_t* child_token, const int32_t* child_node,
                         int64_t n_nodes, int64_t token_offset, int64_t w_out, float* out_score,
                         int32_t* out_node, int32_t* out_parent, int32_t* out_token,
                         std::vector<BeamCandidate>& cand) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  cand.clear();
  for (int64_t w = 0; w < w_in; ++w) {
    const int32_t n = node[w];
    if (n < 0) continue;
    if (n >= n_nodes) return 1;
    const float base = score[w];
    for (int32_t e = child_ptr[n]; e < child_ptr[n + 1]; ++e) {
      const int64_t t = static_cast<int64_t>(child_token[e]) - token_offset;
      if (t < 0 || t >= vocab) return 2;
      const float s = base + logp[w * vocab + t];
      if (!(s > neg_inf)) continue;  // -inf or NaN: impossible continuation
      cand.push_back({s, static_cast<int32_t>(w), e});
    }
  }
  const int64_t keep = std::min<int64_t>(w_out, static_cast<int64_t>(cand.size()));
  std::partial_sort(cand.begin(), cand.begin() + keep, cand.end(), candidate_before);
  for (int64_t k = 0; k < w_out; ++k) {
    if (k < keep) {
      const BeamCandidate& c = cand[k];
      out_score[k] = c.score;
      out_node[k] = child_node[c.edge];
      out_parent[k] = c.beam;
      out_token[k] = child_token[c.edge];
    } else {
      out_score[k] = neg_inf;
      out_node[k] = -1;
      out_parent[k] = -1;
      out_token[k] = -1;
    }
  }
  return 0;
}

}  // namespace mqlrec
