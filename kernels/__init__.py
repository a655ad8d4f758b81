"""Triton kernels, installed as `mqlrec.kernels` (never a top-level `kernels` package).

Import the kernel modules only through `mqlrec.ops`, which falls back to the torch references
when Triton or a GPU is missing.
"""

if __name__ != "mqlrec.kernels":
    # An editable install puts the repository root on sys.path; refuse to pose as the Hugging Face
    # `kernels` package that transformers probes for.
    raise ImportError("the Triton kernels are importable only as mqlrec.kernels")
