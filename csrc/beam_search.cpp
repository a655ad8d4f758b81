// Trie-constrained beam step: filled in by the beam search work (issue #5).
#include <pybind11/pybind11.h>
namespace py = pybind11;
void register_beam(py::module_& m) { (void)m; }
