"""Device run 34: one- and two-warp programs with deeper cp.async pipelines (see ab.py VARIANTS).

Phase 1 times the split kernel alone for every candidate launch at the headline shapes; phase 2
times full calls (split kernel + combine) of the default and the two fastest candidates at four
shapes, with torch SDPA at the headline shape.  Usage (GPU machine): PYTHONPATH=. python
benchmarks/runs/run34.py
"""

from benchmarks.ab import VARIANTS, ab
from benchmarks.kernel import log

KERNEL_ONLY = ["pvt_kernel", "w1_bk16_st2_kernel", "w1_bk16_st3_kernel", "w1_bk16_st4_kernel",
               "w1_bk16_st5_kernel", "w2_bk16_st3_kernel", "w2_bk32_st3_kernel",
               "pvt_attn_only_kernel"]
candidates = [n for n in KERNEL_ONLY if n not in ("pvt_kernel", "pvt_attn_only_kernel")]

times = ab([(128, 8192)], KERNEL_ONLY)[(128, 8192)]
best = sorted(candidates, key=times.get)[:2]
log(f"run34 phase 1: fastest candidates {best}")
full = ["pvt"] + [n.removesuffix("_kernel") for n in best if n.removesuffix("_kernel") in VARIANTS]
ab([(128, 8192)], full, sdpa=True)
ab([(32, 8192), (8, 2048), (8, 32768)], full)
