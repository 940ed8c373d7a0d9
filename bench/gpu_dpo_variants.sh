#!/usr/bin/env bash
# Full-model DPO on a CUDA GPU through prefalign's CLI, every way the reference can be had, with
# backend and precision `auto` (Unsloth on a GPU) unless named: a quick check that each path trains
# (issue 22: Unsloth full-model DPO used to stop at its first step with a float/bfloat16 mismatch).
# Tiny model, synthetic data; bench/gpu_env.sh sourced. Writes WORK/variants.json:
# per variant the exit status, what `auto` resolved, the reference used, the step-1 loss (ln 2 =
# 0.6931 when the reference equals the policy, as it must at step 1) and the last logged metrics.
#
#   bash bench/gpu_dpo_variants.sh WORK
set -uo pipefail
w=${1:-/tmp/variants}; rm -rf "$w"; mkdir -p "$w"
t0=$(date +%s)
prefalign synth --records 800 --out $w/raw.jsonl > $w/prep.log 2>&1
prefalign normalize --input $w/raw.jsonl --records $w/n.jsonl --rejects $w/r.jsonl --stats $w/s.json >> $w/prep.log 2>&1
prefalign split --inputs $w/n.jsonl --train $w/train.jsonl --test $w/test.jsonl --rejects $w/x.jsonl \
  --stats $w/x.json >> $w/prep.log 2>&1
prefalign build-base --train $w/train.jsonl --out $w/base --vocab-size 400 >> $w/prep.log 2>&1
prefalign sft --base $w/base --train $w/train.jsonl --out $w/sft --metrics $w/sft_metrics.json \
  --log-history $w/sft.jsonl --max-steps 100 --logging-steps 10 --no-use-lora > $w/sft.log 2>&1
echo "variants: sft rc=$? at $(( $(date +%s) - t0 )) s"
prefalign reference-logps --sft $w/sft --train $w/train.jsonl --out $w/ref_full.json --no-use-lora \
  > $w/reference.log 2>&1
echo "variants: reference-logps rc=$? at $(( $(date +%s) - t0 )) s"
common=(--sft $w/sft --train $w/train.jsonl --max-steps 20 --logging-steps 1 --learning-rate 1e-3 --beta 0.3
        --loss-type sigmoid)
dpo() {  # name, flags...
  local name=$1; shift
  prefalign dpo "${common[@]}" --out $w/$name/model --metrics $w/$name/metrics.json --log-history $w/$name/log.jsonl \
    "$@" > $w/$name.log 2>&1
  echo $? > $w/$name.rc
}
mkdir -p $w/full_cached $w/full_live $w/full_precompute $w/lora $w/full_trl_live
pids=()
dpo full_cached --no-use-lora --reference-logps $w/ref_full.json & pids+=($!)
dpo full_live --no-use-lora & pids+=($!)
dpo full_precompute --no-use-lora --precompute-ref-log-probs & pids+=($!)
dpo lora --use-lora --adapter-out $w/lora/adapter & pids+=($!)
dpo full_trl_live --no-use-lora --backend trl & pids+=($!)
# Packed against padded log-probs of a bf16 full fine-tune on Unsloth (its packed path infers the
# sequences from the position ids): the cut must not change what each sequence sees.
python3 bench/dpo_equivalence.py --backend unsloth --full --shape tiny --pairs 16 --batches 2 \
  --lengths-file data/hh_rlhf_lengths.json --out $w/equivalence_full_unsloth.json > $w/equivalence.log 2>&1 &
pids+=($!)
wait "${pids[@]}"
grep -E "vs padded|Error" $w/equivalence.log | tail -4
echo "variants: dpo done at $(( $(date +%s) - t0 )) s"
python3 - "$w" <<'PY'
import json, sys, pathlib
w = pathlib.Path(sys.argv[1])
out = {}
for name in ("full_cached", "full_live", "full_precompute", "lora", "full_trl_live"):
    entry = {"rc": int((w / f"{name}.rc").read_text()) if (w / f"{name}.rc").exists() else None}
    metrics = w / name / "metrics.json"
    if metrics.exists():
        m = json.loads(metrics.read_text())
        t = m["train"]
        entry.update(resolved={k: m["resolved"][k] for k in ("backend", "precision", "device", "gpu_name", "why")},
                     reference=t.get("reference"), batching=t.get("batching", {}).get("mode"),
                     first_loss=t.get("first_loss"), loss=t.get("loss"),
                     rewards_accuracies=t.get("rewards/accuracies"), rewards_margins=t.get("rewards/margins"))
    else:
        log = (w / f"{name}.log").read_text(errors="replace").splitlines()
        entry["error"] = [l for l in log if "Error" in l or "error" in l][-5:] or log[-5:]
    out[name] = entry
sft = json.loads((w / "sft_metrics.json").read_text()) if (w / "sft_metrics.json").exists() else {}
out["sft_resolved"] = sft.get("resolved")
eq = w / "equivalence_full_unsloth.json"
if eq.exists():
    e = json.loads(eq.read_text())
    out["equivalence_full_unsloth"] = {k: e.get(k) for k in ("resolved", "grouped_vs_padded", "packed_vs_padded",
                                                               "logp_scale", "losses")}
(w / "variants.json").write_text(json.dumps(out, indent=1) + "\n")
for name, e in out.items():
    if name not in ("sft_resolved", "equivalence_full_unsloth"):
        print(f"variant {name}: rc={e['rc']} first_loss={e.get('first_loss')} loss={e.get('loss')} "
              f"backend={e.get('resolved', {}).get('backend')} ref={e.get('reference')} {e.get('error', '')}")
PY
