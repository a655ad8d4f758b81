// Collision reallocation: filled in by the tokenizer work (issue #2).
#include <pybind11/pybind11.h>
namespace py = pybind11;
void register_collision(py::module_& m) { (void)m; }
