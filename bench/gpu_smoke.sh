#!/usr/bin/env bash
# First contact with a GPU machine: every backend and precision for a few steps at toy size,
# the Unsloth SFT and DPO steps through the CLI (saving and merging included), evaluation.
# Writes logs and JSON under $OUT. Usage (device): bash bench/gpu_smoke.sh
set -uo pipefail
source bench/gpu_env.sh || exit 1
out=${OUT:-/tmp/out}; mkdir -p "$out"
python3 - > "$out/env.txt" 2>&1 <<'PY'
import torch, transformers, trl, peft, datasets, importlib.metadata as md
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))
for name in ("transformers", "trl", "peft", "datasets", "accelerate", "unsloth", "unsloth_zoo", "torchao", "bitsandbytes", "snakemake"):
    print(name, md.version(name))
PY
cat "$out/env.txt"
python3 bench/dpo_throughput.py --shape tiny --seq 64 --batch 4 --warmup 1 --steps 3 \
  --setups trl-bf16,unsloth-bf16,unsloth-4bit,unsloth-fp8 --out "$out/smoke_throughput.json" 2>&1 | tail -12
work=/tmp/smoke; rm -rf $work; mkdir -p $work
prefalign synth --records 600 --out $work/raw.jsonl > /dev/null
prefalign normalize --input $work/raw.jsonl --records $work/n.jsonl --rejects $work/r.jsonl --stats $work/s.json > /dev/null
prefalign split --inputs $work/n.jsonl --train $work/train.jsonl --test $work/test.jsonl --rejects $work/x.jsonl --stats $work/x.json > /dev/null
prefalign build-base --train $work/train.jsonl --out $work/base --vocab-size 400 > $out/base.log 2>&1
prefalign sft --base $work/base --train $work/train.jsonl --out $work/sft --metrics $out/sft_metrics.json \
  --log-history $work/sft.jsonl --max-steps 20 --logging-steps 5 > $out/sft.log 2>&1; echo "sft rc=$?"
prefalign dpo --sft $work/sft --train $work/train.jsonl --out $work/dpo --adapter-out $work/adapter \
  --metrics $out/dpo_metrics.json --log-history $work/dpo.jsonl --max-steps 10 --logging-steps 1 > $out/dpo.log 2>&1
echo "dpo rc=$?"
prefalign evaluate --model $work/dpo --reference $work/sft --test $work/test.jsonl --metrics $out/eval.json \
  --generations $work/g.jsonl --judge-prompts 50 > $out/eval.log 2>&1; echo "eval rc=$?"
for f in sft_metrics dpo_metrics eval; do [ -f $out/$f.json ] && python3 -c "import json,sys; d=json.load(open('$out/$f.json')); print('$f', json.dumps(d.get('resolved', d.get('metrics')))[:400]); print(json.dumps(d.get('train', {}))[:300])"; done
tail -5 $out/sft.log $out/dpo.log
