#!/usr/bin/env bash
# The GPU checks in one short run, for a lent GPU machine (about 4 minutes on an H100):
#   TINY=path/to/tiny-model bash bench/gpu_check.sh [OUT]   # OUT: where logs and JSON go (default gpu-check)
# 1. QLoRA vs LoRA through sftflow's trainer on a ~0.83B Llama (bench/gpu_qlora.py part 2), and
#    with FULL=1 also the quickstart (part 1: prepare, train, evaluate; about 15 minutes there);
# 2. sftflow's training path vs a plain TRL script on the GPU (bench/train_throughput.py, one repeat);
# 3. which attention kernel `model.attention` picks there, and its error where flash-attn is missing.
# TINY: a tiny model built beforehand (its build takes over 2 minutes on the GPU machine, as on a CPU);
# part 2 needs only its tokenizer files. THROUGHPUT=0 skips step 2.
# Wheels in .whl (packages the machine lacks: trl, datasets, bitsandbytes, ...) are installed first.
# Each step has its own time limit, so one that hangs does not cost the others.
set -uo pipefail
out=${1:-${OUT:-gpu-check}}
mkdir -p "$out"
cd "$(dirname "$0")/.."
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  echo "=== $name (limit ${limit}s)"
  local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"
  echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - t0))s"
}

step qlora "${QLORA_LIMIT:-150}" python3 bench/gpu_qlora.py --out "$out" --big-steps 20 --work /tmp/sftflow-gpu \
  ${TINY:+--tiny "$TINY"} $([ -z "${FULL:-}" ] && echo --skip-quickstart)
if [ "${THROUGHPUT:-1}" != 0 ]; then  # builds the tiny model (2+ minutes) unless $SFTFLOW_CACHE holds it
  step throughput "${THROUGHPUT_LIMIT:-70}" python3 bench/train_throughput.py --quick --models llama-25m \
    --data longtail --repeats 1 --work /tmp/sftflow-gpu-bench --out "$out/train_throughput.json"
fi
step attention_kernel 30 python3 - <<'PY'
from sftflow.errors import SftflowError
from sftflow.model.load import attention_kernel

print("auto, bf16 ->", attention_kernel("auto", bf16=True) or "transformers' default (sdpa)")
try:
    print("flash_attention_2 ->", attention_kernel("flash_attention_2", bf16=True))
except SftflowError as e:
    print("flash_attention_2 -> error:", e)
PY
