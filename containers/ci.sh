#!/usr/bin/env bash
# CI step "containers" (run by .ci/run after `make test`; exits non-zero on any failure):
#
#   1. lint both Containerfiles (hadolint) and re-resolve the gpu lock (`make lock-gpu`: it must
#      come out unchanged);
#   2. build the cpu image offline (`containers/build.sh --local-base cpu`: a mmdebstrap
#      bookworm base, podman, the pip CA as a build secret, the local torch CPU wheel) and
#      convert it to a SIF with real Apptainer (Debian sid's, in a privileged podman
#      container: containers/apptainer-podman.sh), recording it in a copy of config.yaml;
#   3. run the whole default workflow twice from that copy, on the host and with
#      `--profile profiles/apptainer`, side by side, and check with containers/compare_runs.py
#      that every artifact under results/ is bit-identical, that each environment.json names
#      the container, and that every job of the second run ran in the SIF.
#
# The host run uses Debian's python3 (3.11.2), the interpreter the image has, with the same
# locks: the report prints the Python version, so a different patch release of Python would
# change report.md and report.html (nothing else: see docs/ci.md, "The container step").
#
# Needs root on Debian bookworm with the Debian and PyPI mirrors reachable (no image registry).
# Everything large lives under BUILD_DIR (default build/containers) and is removed at the end,
# as are the SIF and the podman storage; KEEP=1 keeps them.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
start=$(date +%s)
step() { printf '\n== containers ci [%4d s] %s\n' "$(($(date +%s) - start))" "$*"; }

work=$(mkdir -p "${BUILD_DIR:-build/containers}" && cd "${BUILD_DIR:-build/containers}" && pwd)
export BUILD_DIR=$work PODMAN_ROOT=$work/podman CONTAINERS_CONF=$repo/containers/podman/containers.conf
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
cores=${CORES:-2}

cleanup() {
  local status=$?
  if [[ -n ${host_run:-} ]] && kill -0 "$host_run" 2> /dev/null; then # the host run, on failure
    pkill -TERM -P "$host_run" 2> /dev/null || true
    kill "$host_run" 2> /dev/null || true
  fi
  containers/apptainer-podman.sh stop || true
  if [[ ${KEEP:-0} != 1 ]]; then
    if [[ -d $PODMAN_ROOT ]]; then
      podman --root "$PODMAN_ROOT/storage" --runroot "$PODMAN_ROOT/run" rm --all --force > /dev/null 2>&1 || true
      podman --root "$PODMAN_ROOT/storage" --runroot "$PODMAN_ROOT/run" rmi --all --force > /dev/null 2>&1 || true
    fi
    rm -rf "$work" containers/prefalign-cpu-*.sif containers/prefalign-cpu.partial.sif
  fi
  step "$([[ $status == 0 ]] && echo passed || echo "FAILED (exit $status)")"
  exit "$status"
}
trap cleanup EXIT

step "system packages"
packages=(podman runc mmdebstrap uidmap fuse-overlayfs slirp4netns containernetworking-plugins iptables python3-venv)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2> /dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${missing[@]}" > /dev/null
fi
podman --version
mmdebstrap --version

step "lint the Containerfiles (hadolint)"
python3 -m venv "$work/tools"
"$work/tools/bin/pip" install --quiet --require-hashes -r containers/ci-tools.txt
"$work/tools/bin/hadolint" containers/cpu.Containerfile containers/gpu.Containerfile
echo "hadolint: clean"

step "resolve the gpu lock (make lock-gpu must leave envs/gpu.lock.txt unchanged)"
make --no-print-directory lock-gpu > /dev/null
git diff --exit-code -- envs/gpu.lock.txt
echo "envs/gpu.lock.txt: resolves to itself"

step "host environment: Debian's python3 with the locks (the image's interpreter)"
make --no-print-directory venv VENV="$work/host-venv" PYTHON=/usr/bin/python3 > /dev/null
"$work/host-venv/bin/python" -c 'import platform, torch; print("host: Python", platform.python_version(), "torch", torch.__version__)'
mkdir -p "$work/runs"

run() { # run NAME CONFIG ARGS...: the default workflow in $work/runs/NAME
  local name=$1 config=$2 begin
  shift 2
  begin=$(date +%s)
  if ! PATH=$work/host-venv/bin:$PATH snakemake -s "$repo/Snakefile" -d "$work/runs/$name" \
      --configfile "$config" --cores "$cores" "$@" > "$work/runs/$name.log" 2>&1; then
    tail -n 60 "$work/runs/$name.log"
    echo "the $name run failed" >&2
    return 1
  fi
  echo "$name run: $(($(date +%s) - begin)) s"
}

step "start Apptainer (Debian sid, in a privileged podman container)"
containers/apptainer-podman.sh start "$repo" "$work"
export PATH=$repo/containers/podman-bin:$PATH

step "build the cpu image offline, convert it to a SIF, record it in a copy of config.yaml"
cp config.yaml "$work/config.yaml"
containers/build.sh --local-base --config "$work/config.yaml" cpu
image=$(sed -n 's/^  cpu: *\([^ #]*\).*/\1/p' "$work/config.yaml")
echo "config containers.cpu: $image"
digest=${image#containers/prefalign-cpu-}
echo "${digest%.sif}  $image" | sha256sum --check --strict

# Both runs read the same config (the copy naming the SIF): the resolved config and the
# manifest record containers.cpu. The host run goes on beside the container run (results do
# not depend on the machine's load: the thread count is fixed by the config).
step "the default workflow on the host (in the background)"
run host "$work/config.yaml" &
host_run=$!

step "the default workflow in the container (snakemake --profile profiles/apptainer)"
run apptainer "$work/config.yaml" --profile profiles/apptainer "--apptainer-args=--nv --userns"

step "wait for the host run"
wait "$host_run"

step "compare the artifacts"
"$work/host-venv/bin/python" containers/compare_runs.py "$work/runs/host" "$work/runs/apptainer" --image "$image"
