#!/usr/bin/env bash
# CI step "containers" (run by .ci/run beside `make test`, whose end it waits for before the
# container run when CI_TESTS_DONE names a file; exits non-zero on any failure):
#
#   1. lint both Containerfiles (hadolint) and re-resolve the gpu lock (`make lock-gpu`: it must
#      come out unchanged);
#   2. build the cpu image offline (`containers/build.sh --local-base cpu`: a mmdebstrap
#      bookworm base, podman, the pip CA as a build secret, the local torch CPU wheel) and
#      convert it to a SIF with real Apptainer (Debian sid's, in a privileged podman
#      container: containers/apptainer-podman.sh); the SIF is linked at the path config.yaml's
#      `containers.cpu` names, so the container run reads the embedded default unchanged;
#   3. run the whole default workflow with `--profile profiles/apptainer` and check with
#      containers/compare_runs.py that every artifact under results/ is bit-identical to a host
#      run's, that each environment.json names the container, and that every job ran in the SIF.
#
# The host run: PREFALIGN_DEFAULT_RUN, when it names a finished run of the default (.ci/run: the
# test session's shared run, made with the project's venv on Debian's python3, the image's
# interpreter); else this script makes one, with Debian's python3 and the same locks, beside the
# container run. The Python patch release matters: the report prints the Python version, so a
# different one would change report.md and report.html (nothing else: docs/containers.md).
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
    [[ -n ${image:-} && -f $image && $image == containers/*.sif ]] && rm -f "$image"
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

run() { # run NAME ARGS...: the embedded default in $work/runs/NAME
  local name=$1 begin
  shift
  begin=$(date +%s)
  if ! PATH=$tools:$PATH snakemake -s "$repo/Snakefile" -d "$work/runs/$name" --cores "$cores" "$@" \
      > "$work/runs/$name.log" 2>&1; then
    tail -n 60 "$work/runs/$name.log"
    echo "the $name run failed" >&2
    return 1
  fi
  echo "$name run: $(($(date +%s) - begin)) s"
}

step "start Apptainer (Debian sid, in a privileged podman container)"
containers/apptainer-podman.sh start "$repo" "$work"
export PATH=$repo/containers/podman-bin:$PATH

step "build the cpu image offline and convert it to a SIF"
cp config.yaml "$work/config.yaml"
containers/build.sh --local-base --config "$work/config.yaml" cpu
built=$(sed -n 's/^  cpu: *\([^ #]*\).*/\1/p' "$work/config.yaml")
digest=${built#containers/prefalign-cpu-}
echo "${digest%.sif}  $built" | sha256sum --check --strict
# The run reads config.yaml as it is: the SIF goes where its `containers.cpu` points (a hard link).
image=$(sed -n 's/^  cpu: *\([^ #]*\).*/\1/p' config.yaml)
ln -f "$built" "$image"
echo "containers.cpu of config.yaml: $image (the SIF $built)"

if [[ -n ${CI_TESTS_DONE:-} ]]; then
  # .ci/run builds the image while the tests run and touches this file when they are done (their
  # session run of the default, PREFALIGN_DEFAULT_RUN, is then finished).
  step "wait for the tests ($CI_TESTS_DONE)"
  while [[ ! -e $CI_TESTS_DONE ]]; do sleep 5; done
fi

host=${PREFALIGN_DEFAULT_RUN:-}
if [[ -n $host && -f $host/results/manifest.json ]]; then
  host=$(cd "$host" && pwd)
  tools=$repo/.venv/bin
  step "host run: the test session's ($host)"
else
  host=$work/runs/host
  tools=$work/host-venv/bin
  step "host environment: Debian's python3 with the locks (the image's interpreter)"
  make --no-print-directory venv VENV="$work/host-venv" PYTHON=/usr/bin/python3 > /dev/null
fi
"$tools/python" -c 'import platform, torch; print("host: Python", platform.python_version(), "torch", torch.__version__)'
mkdir -p "$work/runs"

if [[ $host == "$work/runs/host" ]]; then
  # The host run goes on beside the container run (results do not depend on the machine's load:
  # the thread count is fixed by the config).
  step "the default workflow on the host (in the background)"
  run host &
  host_run=$!
fi

step "the default workflow in the container (snakemake --profile profiles/apptainer)"
run apptainer --profile profiles/apptainer "--apptainer-args=--nv --userns"

if [[ -n ${host_run:-} ]]; then
  step "wait for the host run"
  wait "$host_run"
fi

step "compare the artifacts"
"$tools/python" containers/compare_runs.py "$host" "$work/runs/apptainer" --image "$image"
