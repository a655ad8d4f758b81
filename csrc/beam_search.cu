// Trie-constrained beam step on CUDA: one block per batch row (the DESIGN.md beam-step contract).
//
// Takes raw device pointers (torch data_ptr() integers) and a stream handle, so the extension never
// links libtorch. Same order as the CPU step: higher score first, ties: lower parent beam, then lower
// edge (= lower token); -inf / NaN scores are no candidates; missing candidates -> dead outputs.
//
// Selection: w_out rounds; round k finds, with a block-wide reduction, the best candidate that ranks
// strictly after the one picked in round k-1 (keys are unique: (score, beam, edge)). Candidates are
// recomputed from logp each round (W x fan-out reads, L2-resident), which keeps shared memory at
// O(W_in) whatever the fan-out.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace py = pybind11;

namespace {

constexpr int kThreads = 256;

struct Key {
  float score;
  int beam;  // -1 = no candidate
  int edge;
};

__device__ __forceinline__ bool before(const Key& a, const Key& b) {
  if (a.beam < 0) return false;
  if (b.beam < 0) return true;
  if (a.score != b.score) return a.score > b.score;
  if (a.beam != b.beam) return a.beam < b.beam;
  return a.edge < b.edge;
}

__device__ __forceinline__ Key shfl_down(const Key& k, int delta) {
  Key o;
  o.score = __shfl_down_sync(0xffffffffu, k.score, delta);
  o.beam = __shfl_down_sync(0xffffffffu, k.beam, delta);
  o.edge = __shfl_down_sync(0xffffffffu, k.edge, delta);
  return o;
}

__global__ void beam_step_kernel(const float* __restrict__ logp, const float* __restrict__ score,
                                 const int32_t* __restrict__ node, const int32_t* __restrict__ child_ptr,
                                 const int32_t* __restrict__ child_token, const int32_t* __restrict__ child_node,
                                 int64_t n_nodes, int w_in, int64_t vocab, int64_t token_offset, int w_out,
                                 float* __restrict__ out_score, int32_t* __restrict__ out_node,
                                 int32_t* __restrict__ out_parent, int32_t* __restrict__ out_token) {
  extern __shared__ unsigned char smem[];
  float* row_score = reinterpret_cast<float*>(smem);
  int32_t* row_lo = reinterpret_cast<int32_t*>(row_score + w_in);
  int32_t* row_hi = row_lo + w_in;
  __shared__ Key warp_best[kThreads / 32];
  __shared__ Key prev;

  const int64_t b = blockIdx.x;
  const float* lp = logp + b * w_in * vocab;
  for (int w = threadIdx.x; w < w_in; w += blockDim.x) {
    const int32_t n = node[b * w_in + w];
    const bool alive = n >= 0 && n < n_nodes;
    row_score[w] = score[b * w_in + w];
    row_lo[w] = alive ? child_ptr[n] : 0;
    row_hi[w] = alive ? child_ptr[n + 1] : 0;
  }
  if (threadIdx.x == 0) prev = Key{INFINITY, -2, -1};  // ranks before everything: "after prev" = any
  __syncthreads();

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int k = 0; k < w_out; ++k) {
    const Key last = prev;
    Key best{0.f, -1, -1};
    for (int w = 0; w < w_in; ++w) {
      const int lo = row_lo[w], hi = row_hi[w];
      const float base = row_score[w];
      for (int e = lo + threadIdx.x; e < hi; e += blockDim.x) {
        const int64_t t = static_cast<int64_t>(child_token[e]) - token_offset;
        if (t < 0 || t >= vocab) continue;  // validated on the host; never index out of bounds
        const float s = base + lp[w * vocab + t];
        if (!(s > -INFINITY)) continue;
        const Key c{s, w, e};
        // must rank strictly after the previous pick (first round: prev.beam == -2 admits all)
        const bool after_last =
            last.beam == -2 || (s != last.score ? s < last.score : (w != last.beam ? w > last.beam : e > last.edge));
        if (after_last && before(c, best)) best = c;
      }
    }
    for (int d = 16; d > 0; d >>= 1) {
      const Key o = shfl_down(best, d);
      if (before(o, best)) best = o;
    }
    if (lane == 0) warp_best[warp] = best;
    __syncthreads();
    if (threadIdx.x == 0) {
      Key top = warp_best[0];
      for (int i = 1; i < static_cast<int>(blockDim.x >> 5); ++i)
        if (before(warp_best[i], top)) top = warp_best[i];
      const int64_t o = b * w_out + k;
      if (top.beam >= 0) {
        out_score[o] = top.score;
        out_node[o] = child_node[top.edge];
        out_parent[o] = top.beam;
        out_token[o] = child_token[top.edge];
        prev = top;
      } else {
        out_score[o] = -INFINITY;
        out_node[o] = -1;
        out_parent[o] = -1;
        out_token[o] = -1;
        prev = Key{-INFINITY, w_in, 0};  // nothing ranks after this: the remaining rounds stay dead
      }
    }
    __syncthreads();
  }
}

void beam_step_cuda(uintptr_t logp, uintptr_t score, uintptr_t node, uintptr_t child_ptr, uintptr_t child_token,
                    uintptr_t child_node, int64_t n_nodes, int64_t batch, int64_t w_in, int64_t vocab,
                    int64_t token_offset, int64_t w_out, uintptr_t out_score, uintptr_t out_node,
                    uintptr_t out_parent, uintptr_t out_token, uintptr_t stream) {
  if (batch < 0 || w_in < 1 || w_out < 1 || vocab < 1 || n_nodes < 1)
    throw std::invalid_argument("beam_step_cuda: need batch >= 0, w_in, w_out, vocab, n_nodes >= 1");
  if (batch == 0) return;
  const size_t shared = static_cast<size_t>(w_in) * (sizeof(float) + 2 * sizeof(int32_t));
  {
    py::gil_scoped_release release;
    beam_step_kernel<<<static_cast<unsigned>(batch), kThreads, shared, reinterpret_cast<cudaStream_t>(stream)>>>(
        reinterpret_cast<const float*>(logp), reinterpret_cast<const float*>(score),
        reinterpret_cast<const int32_t*>(node), reinterpret_cast<const int32_t*>(child_ptr),
        reinterpret_cast<const int32_t*>(child_token), reinterpret_cast<const int32_t*>(child_node), n_nodes,
        static_cast<int>(w_in), vocab, token_offset, static_cast<int>(w_out), reinterpret_cast<float*>(out_score),
        reinterpret_cast<int32_t*>(out_node), reinterpret_cast<int32_t*>(out_parent),
        reinterpret_cast<int32_t*>(out_token));
  }
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw std::runtime_error(std::string("beam_step_cuda: launch failed: ") + cudaGetErrorString(err));
}

}  // namespace

void register_beam_cuda(py::module_& m) {
  m.def("beam_step_cuda", &beam_step_cuda, py::arg("logp"), py::arg("score"), py::arg("node"), py::arg("child_ptr"),
        py::arg("child_token"), py::arg("child_node"), py::arg("n_nodes"), py::arg("batch"), py::arg("w_in"),
        py::arg("vocab"), py::arg("token_offset"), py::arg("w_out"), py::arg("out_score"), py::arg("out_node"),
        py::arg("out_parent"), py::arg("out_token"), py::arg("stream"),
        "Trie-constrained beam step on CUDA. Arguments are device pointers (torch data_ptr()) of contiguous "
        "float32 logp [B, W_in, V], score [B, W_in], int32 node [B, W_in], int32 trie CSR arrays, and int32/float32 "
        "outputs [B, W_out]; stream is a cudaStream_t handle (torch.cuda.current_stream().cuda_stream).");
}
