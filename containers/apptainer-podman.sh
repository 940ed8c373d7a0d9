#!/usr/bin/env bash
# Apptainer for a machine that has none: Debian bookworm has no apptainer package, and Debian
# sid's (1.4.x) needs a newer glibc, so it runs in a privileged podman container made from a sid
# root file system. The directories given to `start` (and Snakemake's source cache) are mounted
# at the same paths, so Snakemake's `apptainer exec --home $PWD --bind ...` commands mean the
# same thing inside.
#
#   containers/apptainer-podman.sh start DIR...   make the sid image (once) and start the container
#   containers/apptainer-podman.sh exec ARGS...   run `apptainer ARGS` in it, in the current
#                                                 directory, with the caller's environment
#   containers/apptainer-podman.sh stop           remove the container
#
# containers/podman-bin/apptainer calls `exec`: put that folder first on PATH and Snakemake's
# `--sdm apptainer` uses this apptainer. Apptainer runs as root in there, so pass
# `--apptainer-args=--userns` (with the `=`: the value starts with dashes).
#
# Environment: PODMAN_ROOT (podman's storage, as for build.sh), BUILD_DIR, DEBIAN_MIRROR,
# APPTAINER_PODMAN_NAME (the container's name, default prefalign-apptainer).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
name=${APPTAINER_PODMAN_NAME:-prefalign-apptainer}
image=localhost/prefalign-apptainer:sid
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/containers/podman/containers.conf}
pm() {
  if [[ -n ${PODMAN_ROOT:-} ]]; then
    podman --root "$PODMAN_ROOT/storage" --runroot "$PODMAN_ROOT/run" "$@"
  else
    podman "$@"
  fi
}

case ${1:-} in
  start)
    shift
    if ! pm image exists "$image"; then
      build_dir=$(mkdir -p "${BUILD_DIR:-$repo/build/containers}" && cd "${BUILD_DIR:-$repo/build/containers}" && pwd)
      # sid's Release file may be past its Valid-Until date: the option lets apt use it.
      mmdebstrap --quiet --variant=minbase --aptopt='Acquire::Check-Valid-Until "false"' \
        --include=apptainer,squashfuse,fuse3,ca-certificates sid "$build_dir/sid-apptainer.tar" \
        "${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
      pm import "$build_dir/sid-apptainer.tar" "$image" > /dev/null
      rm -f "$build_dir/sid-apptainer.tar"
    fi
    pm rm -f "$name" > /dev/null 2>&1 || true
    # Snakemake binds its source cache into every job's container: it must exist in here too.
    snakemake_cache=${XDG_CACHE_HOME:-$HOME/.cache}/snakemake
    mkdir -p "$snakemake_cache"
    mounts=()
    for dir in "$@" "$snakemake_cache"; do
      dir=$(cd "$dir" && pwd)
      mounts+=(-v "$dir:$dir")
    done
    pm run -d --name "$name" --privileged --network=host "${mounts[@]}" "$image" sleep infinity > /dev/null
    pm exec "$name" apptainer --version
    ;;
  exec)
    shift
    # Apptainer passes its caller's environment into the container (but PATH, which comes from
    # the image): forward ours, which podman exec would otherwise replace.
    env_args=()
    while IFS= read -r -d '' pair; do
      case ${pair%%=*} in
        PATH | HOME | HOSTNAME | PWD | OLDPWD | SHLVL | _ | CONTAINERS_CONF | PODMAN_ROOT) ;;
        *) env_args+=(--env "$pair") ;;
      esac
    done < <(env -0)
    exec podman ${PODMAN_ROOT:+--root "$PODMAN_ROOT/storage" --runroot "$PODMAN_ROOT/run"} \
      exec -i --workdir "$PWD" "${env_args[@]}" "$name" apptainer "$@"
    ;;
  stop)
    pm rm -f "$name" > /dev/null 2>&1 || true
    ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
    ;;
esac
