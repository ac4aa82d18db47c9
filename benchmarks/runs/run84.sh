#!/bin/bash
# Device run 84: Nsight Compute profiles of the shipped launch at 128 x 8192 (bf16, 32/8 heads):
# the split kernel (is L2 throughput, 92% in run 16, the limiter now?) and the combine (31.6 us for
# ~71 MB moved = ~2.2 TB/s in run 82: latency, issue or occupancy bound?).
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
echo "ncu: $NCU"
SECS="--section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats"
prof() {  # name, kernel regex, target
  timeout 200 $NCU --clock-control none $SECS -k "regex:$2" --launch-skip 1 --launch-count 1 \
    -o $OUT/ncu_$1 python benchmarks/ab.py --ncu-target $3 --shapes 128x8192 > $OUT/ncu_$1_run.txt 2>&1
  echo "ncu $1 rc=$?"; tail -3 $OUT/ncu_$1_run.txt
  $NCU --import $OUT/ncu_$1.ncu-rep --page details > $OUT/run84_ncu_$1.txt 2>&1
  rm -f $OUT/ncu_$1.ncu-rep
  grep -E "Duration|DRAM Throughput|Memory Throughput|L2 Cache Throughput|Compute \(SM\)|Registers Per|Achieved Occupancy|Theoretical Occupancy|Waves Per SM|Warp Cycles Per Issued|Eligible Warps|Issued Warp|L2 Hit|Mem Busy|Max Bandwidth" $OUT/run84_ncu_$1.txt | head -30
}
prof combine longflow_decode_combine ours
prof split longflow_decode_split ours
