#!/usr/bin/env bash
# Set up, then generate 512 tokens for a GSM8K question with a 128-slot LongFlow KV buffer
# on the embedded SmolLM2-135M-Instruct (CPU is fine: about 2 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
QUESTION="Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four. She sells the remainder at the farmers' market daily for \$2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?"
# The demo writes exactly --max-new-tokens tokens (no early stop): its --min-new-tokens follows a
# --max-new-tokens given here, unless --min-new-tokens is given too (the last value wins).
# Its 128-slot budget is dropped when the arguments size the buffer themselves (--budget,
# --compression) or keep every token (--policy full).
MAX_NEW=512
BUDGET=(--budget 128)
ARGS=("$@")
for ((i = 0; i < ${#ARGS[@]}; i++)); do
  case "${ARGS[i]}" in
    --max-new-tokens) MAX_NEW="${ARGS[i + 1]:-$MAX_NEW}" ;;
    --max-new-tokens=*) MAX_NEW="${ARGS[i]#*=}" ;;
    --budget | --budget=* | --compression | --compression=* | --policy=full) BUDGET=() ;;
    --policy) [[ "${ARGS[i + 1]:-}" == full ]] && BUDGET=() ;;
  esac
done
exec .venv/bin/longflow-sample --prompt "$QUESTION" "${BUDGET[@]}" --max-new-tokens 512 --min-new-tokens "$MAX_NEW" "$@"
