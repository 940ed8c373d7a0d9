# Source this on a lent GPU machine (docs/gpu.md): installs the carried wheel set (.whl/:
# ../shared/gpu-wheels plus Snakemake's closure) into /tmp/site once (a second source skips the
# install), puts `prefalign` and `snakemake` on the PATH and checks that every package prefalign
# imports is there (bench/gpu_preflight.py). The machine already has torch 2.11
# (CUDA 13), transformers 5.17, peft, accelerate; nothing can be fetched there.
if [ ! -f /tmp/site/.prefalign-installed ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || return 1
  touch /tmp/site/.prefalign-installed
fi
export PYTHONPATH="/tmp/site:$PWD/src" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1
mkdir -p /tmp/bin
printf '#!/bin/sh\nexec python3 -m prefalign "$@"\n' > /tmp/bin/prefalign
printf '#!/bin/sh\nexec python3 -m snakemake "$@"\n' > /tmp/bin/snakemake
chmod +x /tmp/bin/prefalign /tmp/bin/snakemake
export PATH="/tmp/bin:$PATH"
# Every package prefalign imports must import here, before minutes are spent (bench/gpu_preflight.py).
python3 bench/gpu_preflight.py 2>&1 | grep -v "^Failed to load CPU" || return 1
