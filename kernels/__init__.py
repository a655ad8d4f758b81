"""Triton kernels, installed as `mqlrec.kernels` (never a top-level `kernels` package).

Import the kernel modules only through `mqlrec.ops`, which falls back to the torch references
when Triton or a GPU is missing.
"""

if __name__ != "mqlrec.kernels":
    # An editable install (or running from the repository root) puts this folder on sys.path as a
    # top-level `kernels`. transformers probes for the Hugging Face `kernels` package by importing it
    # and does not catch an ImportError; it does treat a module without __file__ and __version__ as
    # "not installed" (a namespace shadow), so look like one instead of raising.
    __file__ = None
