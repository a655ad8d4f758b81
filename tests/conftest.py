import os

# Triton kernels are tested on CPU through the interpreter; it must be set before any kernel
# module is imported. On a GPU host run the suite with MQLREC_TRITON_NATIVE=1 to test compiled kernels.
if os.environ.get("MQLREC_TRITON_NATIVE") != "1":
    os.environ.setdefault("TRITON_INTERPRET", "1")

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
