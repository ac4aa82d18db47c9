#!/bin/bash
# Device run 16: checks with bf16 importance partials, interleaved A/B of launch variants,
# and one Nsight Compute profile each of our split kernel and cuDNN's SDPA kernel at 128 x 8192.
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
python benchmarks/kernel.py --quick-check --skip-table 2>&1 | tee $OUT/checks.txt
python benchmarks/ab.py 2>&1 | tee $OUT/ab.txt
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
echo "ncu: $NCU"
SECS="--section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats"
prof() {  # name, kernel regex, target
  timeout 150 $NCU --clock-control none $SECS -k "regex:$2" --launch-skip 1 --launch-count 1 \
    -o $OUT/ncu_$1 python benchmarks/ab.py --ncu-target $3 --shapes 128x8192 > $OUT/ncu_$1_run.txt 2>&1
  echo "ncu $1 rc=$?"; tail -5 $OUT/ncu_$1_run.txt
  $NCU --import $OUT/ncu_$1.ncu-rep --page details > $OUT/ncu_$1.txt 2>&1
  grep -E "^  [a-zA-Z_]|Duration|DRAM Throughput|Memory Throughput|Registers Per|Shared Memory Config|Dynamic Shared|Static Shared|Achieved Occupancy|Theoretical Occupancy|Block Limit|Waves Per SM|Stall|Warp Cycles Per Issued|Eligible Warps|Issued Warp|L2 Hit|Mem Busy|Max Bandwidth" $OUT/ncu_$1.txt | head -60
}
prof ours longflow_decode_split ours
prof sdpa "sdpa|flash|fmha" sdpa
