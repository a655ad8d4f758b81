// mqlrec._C: plain pybind11 on buffers (no libtorch linkage), one register_* per source file.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void register_collision(py::module_& m);
void register_beam(py::module_& m);
#ifdef MQLREC_WITH_CUDA
void register_beam_cuda(py::module_& m);
#endif

PYBIND11_MODULE(_C, m) {
  m.doc() = "mqlrec native extension: collision reallocation, trie-constrained beam search";
#ifdef MQLREC_WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
#ifdef MQLREC_WITH_OPENMP
  m.attr("with_openmp") = true;
#else
  m.attr("with_openmp") = false;
#endif
  register_collision(m);
  register_beam(m);
#ifdef MQLREC_WITH_CUDA
  register_beam_cuda(m);
#endif
}
