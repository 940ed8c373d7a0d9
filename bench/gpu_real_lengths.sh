#!/usr/bin/env bash
# Issue 17 on a lent H200, one call (about 9 minutes): packed and grouped DPO batches against padded
# ones in bf16 (bench/dpo_equivalence.py, both backends), then bench/dpo_throughput.py on hh-rlhf
# lengths and on the fixed 512-token shape, essentials first; the optional setups last, as far as
# the time allows. Results, the log and the workers' raw results (raw.tgz) go to $OUT.
# Usage (device, from the repository root, with the wheels in .whl/ as bench/gpu_env.sh says and
# ../shared/data/hh_rlhf_lengths.json copied to data/, since ../shared does not travel):
#   bash bench/gpu_real_lengths.sh [lengths file] [deadline s]
set -uo pipefail
source bench/gpu_env.sh || exit 1
out=${OUT:-/tmp/out}; mkdir -p "$out"
lengths=${1:-data/hh_rlhf_lengths.json}
deadline=${2:-570}
model=/tmp/bench-model; raw=/tmp/bench-raw; mkdir -p $raw
exec > >(tee "$out/log.txt") 2>&1
t0=$(date +%s)
left() { echo $(( deadline - ($(date +%s) - t0) )); }
quiet() { grep -vE "it/s\]|s/it\]|Warning|warn|^\{'|^resolved:|^settings:|Tokeniz|Dropping|Extracting|Applying|^ *$"; }
python3 - <<'PY'
import inspect, sys, torch, importlib.metadata as md
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))
print({n: md.version(n) for n in ("transformers", "trl", "peft", "datasets", "accelerate", "unsloth", "unsloth_zoo", "torchao")})
from torch.nn.attention.varlen import varlen_attn
print("varlen_attn", inspect.signature(varlen_attn))
sys.path.insert(0, "bench")
import dpo_throughput as b
from pathlib import Path
print("parameters", b.build_model(Path("/tmp/bench-model"), "1.1b", 1024))
PY
for backend in unsloth trl; do
  timeout 120 python3 bench/dpo_equivalence.py --backend $backend --lengths-file "$lengths" --model $model \
    --pairs 32 --batches 1 --out "$out/equivalence_$backend.json" 2>&1 | grep -E "vs padded|Error|error" | tail -5
  echo "equivalence $backend rc=${PIPESTATUS[0]} at $(( $(date +%s) - t0 )) s"
done
bench() {  # name lengths setups...
  local name=$1 kind=$2 setups=$3; shift 3
  [ "$(left)" -gt 40 ] || { echo "skipped $name: no time left"; return; }
  timeout "$(left)" python3 bench/dpo_throughput.py --lengths $kind --lengths-file "$lengths" --model $model \
    --raw-dir $raw --out "$out/$name.json" --warmup 2 --steps 5 --runs 3 --setups "$setups" "$@" 2>&1 | quiet
  echo "$name rc=${PIPESTATUS[0]} at $(( $(date +%s) - t0 )) s"
}
bench dpo_real_lengths_h200 hh-rlhf "trl-standalone,trl-bf16-packed,unsloth-standalone,unsloth-bf16-packed,unsloth-bf16-packed-cached"
bench dpo_fixed512_h200 fixed "trl-standalone,unsloth-bf16-packed,unsloth-bf16-packed-cached" --seq 512
bench dpo_real_lengths_extra_h200 hh-rlhf "trl-standalone-noac,trl-standalone@16#1,unsloth-bf16-grouped#1,unsloth-bf16-packed-segments#1,unsloth-standalone@16#1"
echo "all done at $(( $(date +%s) - t0 )) s"
tar czf "$out/raw.tgz" -C /tmp bench-raw 2>/dev/null
