// Trie-constrained beam step on CPU buffers (numpy / torch .numpy() views), OpenMP over batch rows.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "beam_step.h"

namespace py = pybind11;

namespace {

template <typename T>
using CArray = py::array_t<T, py::array::c_style>;

template <typename T>
void need(const CArray<T>& a, const char* name, std::vector<int64_t> shape) {
  if (a.ndim() != static_cast<py::ssize_t>(shape.size())) {
    throw std::invalid_argument(std::string("beam_step: ") + name + " has " + std::to_string(a.ndim()) +
                                " dims, expected " + std::to_string(shape.size()));
  }
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] >= 0 && a.shape(i) != shape[i]) {
      throw std::invalid_argument(std::string("beam_step: ") + name + " dim " + std::to_string(i) + " is " +
                                  std::to_string(a.shape(i)) + ", expected " + std::to_string(shape[i]));
    }
  }
}

// Writes into the four output arrays (caller-allocated, so torch tensors can be filled in place).
void beam_step(const CArray<float>& logp, const CArray<float>& score, const CArray<int32_t>& node,
               const CArray<int32_t>& child_ptr, const CArray<int32_t>& child_token,
               const CArray<int32_t>& child_node, int64_t token_offset, CArray<float>& out_score,
               CArray<int32_t>& out_node, CArray<int32_t>& out_parent, CArray<int32_t>& out_token) {
  if (logp.ndim() != 3) throw std::invalid_argument("beam_step: logp must be [B, W_in, V]");
  const int64_t B = logp.shape(0), w_in = logp.shape(1), vocab = logp.shape(2);
  need(score, "score", {B, w_in});
  need(node, "node", {B, w_in});
  if (out_score.ndim() != 2 || out_score.shape(0) != B) throw std::invalid_argument("beam_step: out_score must be [B, W_out]");
  const int64_t w_out = out_score.shape(1);
  need(out_node, "out_node", {B, w_out});
  need(out_parent, "out_parent", {B, w_out});
  need(out_token, "out_token", {B, w_out});
  need(child_ptr, "child_ptr", {-1});
  const int64_t n_nodes = child_ptr.shape(0) - 1;
  if (n_nodes < 1) throw std::invalid_argument("beam_step: child_ptr must hold n_nodes + 1 >= 2 entries");
  need(child_token, "child_token", {-1});
  need(child_node, "child_node", {child_token.shape(0)});

  const float* lp = logp.data();
  const float* sc = score.data();
  const int32_t* nd = node.data();
  const int32_t* cp = child_ptr.data();
  const int32_t* ct = child_token.data();
  const int32_t* cn = child_node.data();
  float* os = out_score.mutable_data();
  int32_t* on = out_node.mutable_data();
  int32_t* op = out_parent.mutable_data();
  int32_t* ot = out_token.mutable_data();
  int error = 0;
  {
    py::gil_scoped_release release;
    // Threads only pay off for big batches: a step is ~1 us per row, and waking (or spin-waiting)
    // a second OpenMP runtime next to torch's costs far more than that on a busy machine.
    const bool parallel = B * w_in * vocab >= (int64_t{1} << 23);
    (void)parallel;
#pragma omp parallel if (parallel)
    {
      std::vector<mqlrec::BeamCandidate> cand;
#pragma omp for schedule(static)
      for (int64_t b = 0; b < B; ++b) {
        int rc = mqlrec::beam_step_row(lp + b * w_in * vocab, sc + b * w_in, nd + b * w_in, w_in, vocab, cp, ct, cn,
                                       n_nodes, token_offset, w_out, os + b * w_out, on + b * w_out,
                                       op + b * w_out, ot + b * w_out, cand);
        if (rc != 0) {
#pragma omp atomic write
          error = rc;
        }
      }
    }
  }
  if (error == 1) throw std::out_of_range("beam_step: a node id is >= the trie's node count");
  if (error == 2) throw std::out_of_range("beam_step: a child token minus token_offset falls outside logp's last dim");
}

}  // namespace

void register_beam(py::module_& m) {
  m.def("beam_step", &beam_step, py::arg("logp"), py::arg("score"), py::arg("node"), py::arg("child_ptr"),
        py::arg("child_token"), py::arg("child_node"), py::arg("token_offset"), py::arg("out_score").noconvert(),
        py::arg("out_node").noconvert(), py::arg("out_parent").noconvert(), py::arg("out_token").noconvert(),
        "Trie-constrained beam step (DESIGN.md contract) on CPU buffers; fills the out_* arrays in place.");
}
