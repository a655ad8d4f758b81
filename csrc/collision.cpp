// Collision reallocation (MQL4GRec official algorithm + a completion phase), on numpy buffers.
// Mirrors mqlrec/tokenizer/collisions.py:reallocate_collisions_reference step for step; the
// Python file documents the algorithm. Codes are packed into one uint64 (radix K) for hashing.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace py = pybind11;

namespace {

constexpr uint64_t kEmpty = ~uint64_t(0);

// Open-addressing set of packed codes (linear probing); only inserts and lookups are needed.
class CodeSet {
 public:
  explicit CodeSet(size_t expected) {
    size_t cap = 16;
    while (cap < 2 * expected + 16) cap <<= 1;
    slots_.assign(cap, kEmpty);
  }
  bool contains(uint64_t key) const {
    for (size_t i = slot(key);; i = (i + 1) & (slots_.size() - 1)) {
      if (slots_[i] == key) return true;
      if (slots_[i] == kEmpty) return false;
    }
  }
  void insert(uint64_t key) {
    if (2 * (size_ + 1) > slots_.size()) grow();
    for (size_t i = slot(key);; i = (i + 1) & (slots_.size() - 1)) {
      if (slots_[i] == key) return;
      if (slots_[i] == kEmpty) {
        slots_[i] = key;
        ++size_;
        return;
      }
    }
  }

 private:
  size_t slot(uint64_t key) const {
    key ^= key >> 33;  // splitmix-style finaliser: packed codes are far from uniform
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return static_cast<size_t>(key) & (slots_.size() - 1);
  }
  void grow() {
    std::vector<uint64_t> old;
    old.swap(slots_);
    slots_.assign(old.size() * 2, kEmpty);
    size_ = 0;
    for (uint64_t k : old)
      if (k != kEmpty) insert(k);
  }
  std::vector<uint64_t> slots_;
  size_t size_ = 0;
};

struct Problem {
  int64_t n, levels, n_cand, k;
  const int64_t* cand;   // [N, L, T]
  const float* nearest;  // [N] distance to the item's nearest last-level code (stride L*T)
  int64_t cand_at(int64_t item, int64_t level, int64_t t) const { return cand[(item * levels + level) * n_cand + t]; }
  uint64_t pack(const int64_t* code) const {
    uint64_t key = 0;
    for (int64_t l = 0; l < levels; ++l) key = key * static_cast<uint64_t>(k) + static_cast<uint64_t>(code[l]);
    return key;
  }
};

// Groups of >1 items sharing a code, ordered by their first item, each sorted by distance (stable).
std::vector<std::vector<int64_t>> collision_groups(const Problem& p, const std::vector<int64_t>& cur) {
  std::vector<std::pair<uint64_t, int64_t>> keyed(p.n);
#pragma omp parallel for schedule(static) if (p.n > 65536)
  for (int64_t i = 0; i < p.n; ++i) keyed[i] = {p.pack(&cur[i * p.levels]), i};
  std::sort(keyed.begin(), keyed.end());
  std::vector<std::vector<int64_t>> groups;
  for (size_t s = 0; s < keyed.size();) {
    size_t e = s + 1;
    while (e < keyed.size() && keyed[e].first == keyed[s].first) ++e;
    if (e - s > 1) {
      std::vector<int64_t> g;
      for (size_t i = s; i < e; ++i) g.push_back(keyed[i].second);  // ascending item ids
      groups.push_back(std::move(g));
    }
    s = e;
  }
  std::sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) { return a[0] < b[0]; });
  for (auto& g : groups)
    std::stable_sort(g.begin(), g.end(), [&](int64_t a, int64_t b) { return p.nearest[a] < p.nearest[b]; });
  return groups;
}

// The official move: last level from candidate `start`, then the penultimate level's candidates.
void official_move(const Problem& p, int64_t item, int64_t start, const CodeSet& used, int64_t* code) {
  const int64_t last = p.levels - 1;
  std::vector<int64_t> base(code, code + p.levels);
  int64_t num = start;
  while (used.contains(p.pack(code)) && num < p.n_cand) code[last] = p.cand_at(item, last, num++);
  if (last < 1) return;
  for (int64_t j = 1; j < p.n_cand; ++j) {
    if (used.contains(p.pack(code))) {
      std::copy(base.begin(), base.end(), code);
      code[last - 1] = p.cand_at(item, last - 1, j);
    }
    num = 0;
    while (used.contains(p.pack(code)) && num < p.n_cand) code[last] = p.cand_at(item, last, num++);
    if (!used.contains(p.pack(code))) break;
  }
}

// Completion: last level alone, then level L-2..0 to its j-th candidate with the last level rescanned,
// then the lexicographic successor (wrapping) of the input code. Always finds a free code when N <= K^L.
void complete_move(const Problem& p, int64_t item, const int64_t* input, const CodeSet& used, int64_t* code) {
  const int64_t last = p.levels - 1;
  for (int64_t level = -1; level < last; ++level) {
    const int64_t changed = level < 0 ? -1 : last - 1 - level;  // -1 = only the last level
    for (int64_t j = (changed < 0 ? 0 : 1); j < (changed < 0 ? 1 : p.n_cand); ++j) {
      std::copy(input, input + p.levels, code);
      if (changed >= 0) code[changed] = p.cand_at(item, changed, j);
      for (int64_t t = 0; t < p.n_cand; ++t) {
        code[last] = p.cand_at(item, last, t);
        if (!used.contains(p.pack(code))) return;
      }
    }
  }
  std::copy(input, input + p.levels, code);
  while (true) {
    int64_t level = last;
    while (level >= 0) {
      if (++code[level] < p.k) break;
      code[level] = 0;
      --level;
    }
    if (!used.contains(p.pack(code))) return;
  }
}

py::tuple reallocate_collisions(py::array_t<int64_t, py::array::c_style | py::array::forcecast> codes,
                                py::array_t<int64_t, py::array::c_style | py::array::forcecast> candidates,
                                py::array_t<float, py::array::c_style | py::array::forcecast> distances,
                                int64_t codebook_size, int64_t max_passes, bool complete) {
  if (codes.ndim() != 2) throw std::invalid_argument("codes must be [N, L]");
  const int64_t n = codes.shape(0), levels = codes.shape(1);
  if (candidates.ndim() != 3 || candidates.shape(0) != n || candidates.shape(1) != levels || candidates.shape(2) < 1)
    throw std::invalid_argument("candidates must be [N, L, T>=1] matching codes");
  if (distances.ndim() != 3 || distances.shape(0) != n || distances.shape(1) != levels ||
      distances.shape(2) != candidates.shape(2))
    throw std::invalid_argument("distances must have the candidates' shape");
  if (levels < 1 || codebook_size < 1) throw std::invalid_argument("need L >= 1 and codebook_size >= 1");
  long double space = 1;
  for (int64_t l = 0; l < levels; ++l) space *= static_cast<long double>(codebook_size);
  if (space > 9.2e18L) throw std::invalid_argument("codebook_size^L must fit in 63 bits");
  if (space < static_cast<long double>(n)) throw std::invalid_argument("more items than distinct codes");
  const int64_t n_cand = candidates.shape(2);

  const int64_t* in_codes = codes.data();
  const int64_t* cand = candidates.data();
  bool bad = false;
#pragma omp parallel for reduction(|| : bad) schedule(static) if (n * levels * n_cand > (1 << 20))
  for (int64_t i = 0; i < n * levels * n_cand; ++i) bad = bad || cand[i] < 0 || cand[i] >= codebook_size;
  for (int64_t i = 0; i < n * levels; ++i) bad = bad || in_codes[i] < 0 || in_codes[i] >= codebook_size;
  if (bad) throw std::invalid_argument("codes and candidates must lie in [0, codebook_size)");

  std::vector<float> nearest(n);
  const float* dist = distances.data();
  for (int64_t i = 0; i < n; ++i) nearest[i] = dist[(i * levels + levels - 1) * n_cand];
  Problem p{n, levels, n_cand, codebook_size, cand, nearest.data()};

  std::vector<int64_t> cur(in_codes, in_codes + n * levels);
  int64_t passes = 0;
  {
    py::gil_scoped_release release;
    CodeSet used(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) used.insert(p.pack(&cur[i * levels]));
    std::vector<int64_t> code(levels);
    while (passes < max_passes) {
      auto groups = collision_groups(p, cur);
      if (groups.empty()) break;
      for (const auto& g : groups) {
        for (size_t rank = 1; rank < g.size(); ++rank) {
          const int64_t item = g[rank];
          std::copy(&cur[item * levels], &cur[item * levels] + levels, code.begin());
          official_move(p, item, static_cast<int64_t>(rank), used, code.data());
          if (complete && used.contains(p.pack(code.data()))) continue;  // failed search: stay put
          std::copy(code.begin(), code.end(), &cur[item * levels]);
          used.insert(p.pack(code.data()));
        }
      }
      ++passes;
    }
    if (complete) {
      for (const auto& g : collision_groups(p, cur)) {
        for (size_t rank = 1; rank < g.size(); ++rank) {
          const int64_t item = g[rank];
          complete_move(p, item, &in_codes[item * levels], used, code.data());
          std::copy(code.begin(), code.end(), &cur[item * levels]);
          used.insert(p.pack(code.data()));
        }
      }
    }
  }
  py::array_t<int64_t> out({n, levels});
  std::copy(cur.begin(), cur.end(), out.mutable_data());
  return py::make_tuple(out, passes);
}

}  // namespace

void register_collision(py::module_& m) {
  m.def("reallocate_collisions", &reallocate_collisions, py::arg("codes"), py::arg("candidates"),
        py::arg("distances"), py::arg("codebook_size"), py::arg("max_passes") = 2, py::arg("complete") = true,
        "Unique semantic IDs per item: the MQL4GRec official passes, then (complete=True) further fallbacks.\n"
        "codes [N, L] int64, candidates/distances [N, L, T] (nearest first). Returns (codes [N, L], passes).");
}
