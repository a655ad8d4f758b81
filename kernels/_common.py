"""Small helpers shared by the Triton kernels: interpreter detection, dot precision, output allocation."""

from __future__ import annotations

import os

import torch

# Tests set this to True so that every output starts as NaN (floats) or -1 (integers): an element
# a kernel forgot to write then shows up instead of hiding behind whatever torch.empty returned.
POISON_OUTPUTS = False


def interpreting() -> bool:
    """True when Triton runs kernels through its numpy interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def dot_precision() -> str:
    """Input precision of fp32 tl.dot, following torch's own fp32 matmul setting.

    The references compute `a.float() @ b.float().T`; on a GPU torch uses TF32 for that only when
    `torch.backends.cuda.matmul.allow_tf32` is on. Mirror it: plain "tf32" then, otherwise "tf32x3"
    (three TF32 products, close to fp32 accuracy, still on the tensor cores).
    """
    return "tf32" if torch.backends.cuda.matmul.allow_tf32 else "tf32x3"


def compute_in_fp32(dtype: torch.dtype) -> bool:
    """Whether the kernel must upcast its operands to fp32 before tl.dot.

    fp32 inputs obviously; bf16/fp16 products are exact in fp32, so on a GPU they feed the tensor
    cores as they are. The interpreter mis-multiplies bf16 (it stores it as uint16), so it always
    upcasts.
    """
    return dtype == torch.float32 or interpreting()


def empty(shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """torch.empty, or a poisoned tensor (NaN / -1) when POISON_OUTPUTS is set."""
    if not POISON_OUTPUTS:
        return torch.empty(shape, dtype=dtype, device=device)
    fill = float("nan") if dtype.is_floating_point else -1
    return torch.full(shape, fill, dtype=dtype, device=device)
