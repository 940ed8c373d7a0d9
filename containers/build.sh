#!/usr/bin/env bash
# Build prefalign's container images, convert them to Apptainer SIF files, and record each
# SIF (named by its sha256 digest) in the config's `containers` section: `make images`.
#
#   containers/build.sh [options] [cpu] [gpu]        (default: cpu gpu)
#
#   --local-base      build FROM a Debian bookworm root file system made here with mmdebstrap
#                     instead of the registry base pinned in the Containerfile (offline
#                     machines; cpu only: the gpu base is NVIDIA's CUDA image)
#   --engine NAME     podman (default) or docker; docker builds the OCI image only (no SIF)
#   --no-sif          build the OCI image only (nothing is recorded)
#   --config FILE     the config whose `containers` section records the SIF (default: the
#                     repository's config.yaml)
#
# Environment: BUILD_DIR (scratch space, default build/containers), PIP_CA_BUNDLE (a CA bundle
# for pip inside the build, passed as a build secret; default: pip's own `cert` setting or
# PIP_CERT when set; never stored in the image), PIP_FIND_LINKS (where a torch CPU wheel is
# looked for), DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR (for --local-base), PODMAN_ROOT
# (podman's storage; default: podman's own), APPTAINER (the apptainer command; default: the
# one on PATH, else Debian sid's in a podman container: containers/apptainer-podman.sh).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
engine=podman local_base=0 sif=1 config=$repo/config.yaml images=()
while (($#)); do
  case $1 in
    --local-base) local_base=1 ;;
    --engine) engine=$2; shift ;;
    --no-sif) sif=0 ;;
    --config) config=$(realpath -m "$2"); shift ;;
    cpu | gpu) images+=("$1") ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
cd "$repo"
((${#images[@]})) || images=(cpu gpu)
[[ $engine == podman || $engine == docker ]] || { echo "build.sh: --engine podman|docker, not '$engine'" >&2; exit 2; }
[[ $engine == podman ]] || sif=0

build_dir=$(mkdir -p "${BUILD_DIR:-build/containers}" && cd "${BUILD_DIR:-build/containers}" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/containers/podman/containers.conf}
oci() {
  if [[ $engine == podman && -n ${PODMAN_ROOT:-} ]]; then
    podman --root "$PODMAN_ROOT/storage" --runroot "$PODMAN_ROOT/run" "$@"
  else
    "$engine" "$@"
  fi
}
log() { printf '[build.sh %s] %s\n' "$(date +%T)" "$*" >&2; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
revision=$(git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)

# The pip CA bundle: on these machines HTTPS is re-signed by a CA only the system bundle has.
ca_bundle=${PIP_CA_BUNDLE:-${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || true)}}
secret=()
if [[ -n $ca_bundle && -s $ca_bundle ]]; then
  secret=(--secret "id=pipcert,src=$ca_bundle")
fi

# The build context holds only what the Containerfiles copy (not .venv, results or .git).
context() {
  local dir=$build_dir/context
  rm -rf "$dir" && mkdir -p "$dir/containers/wheels"
  cp -r envs src pyproject.toml README.md "$dir/"
  find "$dir/src" -name __pycache__ -prune -exec rm -rf {} + -o -name '*.egg-info' -prune -exec rm -rf {} +
  local wheel
  for wheel in containers/wheels/torch-*.whl ${PIP_FIND_LINKS:+$PIP_FIND_LINKS/torch-*+cpu-*.whl}; do
    [[ -f $wheel ]] && cp "$wheel" "$dir/containers/wheels/"
  done
  echo "$dir"
}

local_base_image=localhost/prefalign-base:bookworm
make_local_base() {
  if oci image exists "$local_base_image"; then return; fi
  local mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
  local security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
  log "making the bookworm base with mmdebstrap ($mirror)"
  mmdebstrap --quiet --variant=minbase bookworm "$build_dir/base-bookworm.tar" \
    "deb $mirror bookworm main" "deb $mirror bookworm-updates main" "deb $security bookworm-security main"
  oci import "$build_dir/base-bookworm.tar" "$local_base_image" > /dev/null
  rm -f "$build_dir/base-bookworm.tar"
}

apptainer_cmd() {
  if [[ -n ${APPTAINER:-} ]]; then
    $APPTAINER "$@"
  elif command -v apptainer > /dev/null; then
    apptainer "$@"
  else
    "$repo/containers/apptainer-podman.sh" exec "$@"
  fi
}


for image in "${images[@]}"; do
  lock=envs/$image.lock.txt
  tag=localhost/prefalign-$image:$version
  args=(--build-arg "PREFALIGN_VERSION=$version" --build-arg "VCS_REF=$revision"
        --build-arg "LOCK_SHA256=$(sha256sum "$lock" | cut -d' ' -f1)")
  if ((local_base)); then
    [[ $image == cpu ]] || { echo "build.sh: --local-base makes a Debian base: cpu only" >&2; exit 2; }
    make_local_base
    args+=(--build-arg "BASE_IMAGE=$local_base_image")
  fi
  ctx=$(context)
  log "building $tag from containers/$image.Containerfile"
  # docker format: the OCI format drops SHELL (the RUN steps rely on bash's pipefail).
  [[ $engine == podman ]] && args+=(--format docker)
  oci build --network=host "${secret[@]}" "${args[@]}" -f "$repo/containers/$image.Containerfile" -t "$tag" "$ctx"
  id=$(oci image inspect --format '{{.Id}}' "$tag")
  log "$tag: image id sha256:${id#sha256:}"
  ((sif)) || continue

  log "converting $tag to SIF with apptainer"
  archive=$build_dir/prefalign-$image.tar
  rm -f "$archive"
  oci save --quiet --format docker-archive -o "$archive" "$tag"
  log "saved $(du -h "$archive" | cut -f1) docker archive; apptainer build"
  tmp_sif=$repo/containers/prefalign-$image.partial.sif
  apptainer_cmd build --force "$tmp_sif" "docker-archive:$archive"
  rm -f "$archive"
  digest=$(sha256sum "$tmp_sif" | cut -d' ' -f1)
  sif_path=containers/prefalign-$image-$digest.sif
  find containers -maxdepth 1 -name "prefalign-$image-*.sif" ! -name "${sif_path##*/}" -delete
  mv "$tmp_sif" "$sif_path"
  python3 containers/record_image.py "$config" "$image" "$sif_path"
  log "$sif_path recorded as containers.$image in $config"
done
