#!/bin/bash
# Device run 25: kernel-only A/B of the transposed body with and without |v|_1 from registers,
# then Nsight Compute source-level (SASS) warp-stall sampling of the exact and the
# attention-only split kernels at 128 x 8192.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
python benchmarks/ab.py --shapes 128x8192,32x8192 \
  --variants pvt_kernel,attn_only_kernel,pvt_attn_only_kernel,pvt_no_vl1_kernel,no_vl1_kernel 2>&1 | tee $OUT/ab.txt
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
echo "ncu: $NCU"; $NCU --version | tail -1
SECS="--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section SourceCounters --section MemoryWorkloadAnalysis"
prof() {  # name, variant
  timeout 170 $NCU --clock-control none $SECS --import-source no -k "regex:longflow_decode_split" \
    --launch-skip 1 --launch-count 1 -o $OUT/ncu_$1 \
    python benchmarks/ab.py --ncu-target ours --shapes 128x8192 --variants $2 > $OUT/ncu_$1_run.txt 2>&1
  echo "ncu $1 rc=$?"; tail -3 $OUT/ncu_$1_run.txt
  $NCU --import $OUT/ncu_$1.ncu-rep --page details > $OUT/ncu_$1.txt 2>&1
  grep -E "Duration|DRAM Throughput|Registers Per|Achieved Occupancy|Block Limit (Reg|Shared)|Warp Cycles Per Issued|Eligible Warps" $OUT/ncu_$1.txt
  $NCU --import $OUT/ncu_$1.ncu-rep --page source --csv --print-source sass > $OUT/sass_$1.csv 2>&1
  echo "sass_$1.csv: $(wc -l < $OUT/sass_$1.csv) lines"; head -c 600 $OUT/sass_$1.csv; echo
  rm -f $OUT/ncu_$1_run.txt
}
prof pvt pvt_kernel
prof attn attn_only_kernel
ls -la $OUT
