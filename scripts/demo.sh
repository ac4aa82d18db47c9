#!/usr/bin/env bash
# Set up, then generate 512 tokens for a GSM8K question with a 128-slot LongFlow KV buffer
# on the embedded SmolLM2-135M-Instruct (CPU is fine: about 2 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
QUESTION="Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four. She sells the remainder at the farmers' market daily for \$2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?"
# The demo writes exactly --max-new-tokens tokens (no early stop): its --min-new-tokens follows a
# --max-new-tokens given here, unless --min-new-tokens is given too (the last value wins).
MAX_NEW=512
ARGS=("$@")
for ((i = 0; i < ${#ARGS[@]}; i++)); do
  case "${ARGS[i]}" in
    --max-new-tokens) MAX_NEW="${ARGS[i + 1]:-$MAX_NEW}" ;;
    --max-new-tokens=*) MAX_NEW="${ARGS[i]#*=}" ;;
  esac
done
exec .venv/bin/longflow-sample --prompt "$QUESTION" --budget 128 --max-new-tokens 512 --min-new-tokens "$MAX_NEW" "$@"
