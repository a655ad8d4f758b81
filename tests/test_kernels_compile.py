"""The kernels compile natively for Hopper (sm_90) with their default launch configurations.

The interpreter runs any tile shape; a real compile can still fail (e.g. a tile needing more shared
memory than a block may have) or fall off the tensor cores. bench/kernel_report.py compiles ahead
of time with Triton's bundled ptxas, so this needs no GPU; it runs in a subprocess because the test
session has TRITON_INTERPRET=1 set before the kernels were imported.
"""

import os
import subprocess
import sys

import pytest

REPORT = os.path.join(os.path.dirname(__file__), "..", "bench", "kernel_report.py")


def _have_ptxas() -> bool:
    try:
        import triton.backends.nvidia as nvidia
    except Exception:
        return False
    return os.path.exists(os.path.join(os.path.dirname(nvidia.__file__), "bin", "ptxas"))


@pytest.mark.skipif(not _have_ptxas(), reason="Triton's NVIDIA backend (bundled ptxas/cuobjdump) is not installed")
def test_default_configs_compile_for_sm90():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    run = subprocess.run([sys.executable, REPORT, "--quick", "--arch", "90"], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = [line.split() for line in run.stdout.splitlines() if line.startswith(("rq ", "nce "))]
    assert len(rows) == 6, run.stdout  # rq without / with top-T; InfoNCE lse + grad for fp32 and bf16
    header = next(line.split() for line in run.stdout.splitlines() if line.startswith("kernel"))
    col = {name: header.index(name) - len(header) for name in ("stack", "HGMMA", "HMMA")}  # from the right
    for row in rows:
        # The top-T path uses 32-row tiles, below wgmma's 64: the older MMA is expected there.
        mma = "HMMA" if "T=16" in row else "HGMMA"
        assert int(row[col[mma]]) > 0, f"not on the tensor cores ({mma}): {' '.join(row)}"
    spill_free = [row for row in rows if row[0] == "rq" or "bf16" in row]
    assert all(int(row[col["stack"]]) == 0 for row in spill_free), run.stdout
