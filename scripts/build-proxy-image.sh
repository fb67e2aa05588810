#!/usr/bin/env bash
# Builds the per-user streaming proxy image from local files only (no registry needed).
#
#   scripts/build-proxy-image.sh              build (or confirm up to date) $IMAGE
#   scripts/build-proxy-image.sh --force      rebuild even if the inputs did not change
#   scripts/build-proxy-image.sh --context D  only write the build context of
#                                             server/docker/streaming-proxy.Dockerfile into D
#
# Environment:
#   IMAGE   tag to build (default cloudtolocalllm/streaming-proxy:local)
#   BASE    scratch (default): FROM scratch with this machine's /usr/bin/node and the libraries
#           `ldd` lists for it, via scripts/proxy-image/scratch.Dockerfile; works offline.
#           alpine: server/docker/streaming-proxy.Dockerfile (FROM node:20-alpine; needs that
#           image locally or a reachable registry).
#   NODE_BIN  node binary to put in the scratch image (default: the `node` on PATH, resolved)
#
# Both variants have the same layout: /app/proxy.mjs (server/src/proxy/cli.ts bundled into one
# ESM file by esbuild) and /app/healthcheck.mjs, user 1001:1001, port 8080, the same ENV,
# HEALTHCHECK and CMD.
#
# Idempotent and fast when nothing changed: the image carries a label with the SHA-256 of every
# input (bundle, health check, Dockerfile, this script, and for scratch the node binary and its
# libraries); if the existing image has the same hash the build is skipped. A second label,
# cloudtolocalllm.image-base, records BASE. The cloud server and start:headless run this script
# themselves when the image is missing or its hash differs (server/src/runtime/docker/proxy-image.ts).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${IMAGE:-cloudtolocalllm/streaming-proxy:local}"
BASE="${BASE:-scratch}"
ESBUILD="${ESBUILD:-$ROOT/node_modules/.bin/esbuild}"
HASH_LABEL="cloudtolocalllm.inputs-sha256"

force=0
context_only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --context) shift; context_only="${1:?--context needs a directory}" ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "build-proxy-image: unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { printf 'build-proxy-image: %s\n' "$*"; }
die() { printf 'build-proxy-image: error: %s\n' "$*" >&2; exit 1; }
started=$(date +%s%N)
elapsed() { echo "$(( ($(date +%s%N) - started) / 1000000 )) ms"; }

case "$BASE" in
  scratch) DOCKERFILE="$ROOT/scripts/proxy-image/scratch.Dockerfile" ;;
  alpine) DOCKERFILE="$ROOT/server/docker/streaming-proxy.Dockerfile" ;;
  *) die "BASE must be 'scratch' or 'alpine', not '$BASE'" ;;
esac
[ -x "$ESBUILD" ] || die "esbuild not found at $ESBUILD (run npm run setup in $ROOT)"

work="$(mktemp -d "${TMPDIR:-/tmp}/ctll-proxy-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT
ctx="$work/context"
mkdir -p "$ctx/app"

# 1. The proxy as one file. ESM output: the bundle's CommonJS dependencies (prom-client, ws)
#    call require(), which an ES module lacks, so the banner makes one with createRequire.
#    esbuild runs from the repository root so the bundle holds only relative paths and its
#    bytes (and hence the input hash) do not depend on where the checkout lives.
(cd "$ROOT" && "$ESBUILD" server/src/proxy/cli.ts \
  --bundle --platform=node --target=node20 --format=esm \
  --banner:js="import { createRequire as __ctllCreateRequire } from 'node:module'; const require = __ctllCreateRequire(import.meta.url);" \
  --legal-comments=none --log-level=warning \
  --outfile="$ctx/app/proxy.mjs") || die "esbuild could not bundle server/src/proxy/cli.ts"
cp "$ROOT/server/docker/healthcheck.mjs" "$ctx/app/healthcheck.mjs"

if [ -n "$context_only" ]; then
  mkdir -p "$context_only/app"
  cp "$ctx/app/proxy.mjs" "$ctx/app/healthcheck.mjs" "$context_only/app/"
  say "wrote the build context of server/docker/streaming-proxy.Dockerfile to $context_only ($(elapsed))"
  exit 0
fi

command -v docker >/dev/null || die "the docker CLI is not installed"
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (is dockerd running?)"

# 2. For scratch: the node binary and every library it loads, at the paths ldd reports, plus
#    the dynamic loader (PT_INTERP). Copied with -L: on merged-/usr hosts /lib is a symlink,
#    in the image these are plain files at the same paths.
hash_inputs=("$ctx/app/proxy.mjs" "$ctx/app/healthcheck.mjs" "$DOCKERFILE" "${BASH_SOURCE[0]}")
if [ "$BASE" = scratch ]; then
  # (No set -e exit inside the substitutions: a missing binary gets the message below.)
  node_path="${NODE_BIN:-$(command -v node || true)}"
  node_bin="$(readlink -f "$node_path" 2>/dev/null || true)"
  if [ -z "$node_bin" ] || [ ! -f "$node_bin" ] || [ ! -x "$node_bin" ]; then
    die "node binary not found at '${node_path:-(no node on PATH)}' (set NODE_BIN to the node to copy into the image)"
  fi
  mapfile -t libs < <(ldd "$node_bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
  [ "${#libs[@]}" -gt 0 ] || die "ldd $node_bin listed no libraries (a static binary needs no scratch tweaks; check ldd)"
  hash_inputs+=("$node_bin" "${libs[@]}")
fi
inputs_hash="$(for f in "${hash_inputs[@]}"; do sha256sum < "$f"; done | sha256sum | cut -c1-64)"

# Two builds at once (parallel test files) would both build; the second waits and then finds
# the image up to date.
exec 9>"${TMPDIR:-/tmp}/ctll-build-proxy-image.lock"
flock 9

current="$(docker image inspect --format "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$IMAGE" 2>/dev/null || true)"
if [ "$force" = 0 ] && [ "$current" = "$inputs_hash" ]; then
  say "$IMAGE is up to date (inputs ${inputs_hash:0:12}, checked in $(elapsed))"
  exit 0
fi

if [ "$BASE" = scratch ]; then
  rt="$ctx/runtime"
  mkdir -p "$rt/usr/bin" "$rt/etc"
  cp -L "$node_bin" "$rt/usr/bin/node"
  for lib in "${libs[@]}"; do
    mkdir -p "$rt$(dirname "$lib")"
    cp -L "$lib" "$rt$lib"
  done
  # Names for the ids the container runs as (tools and error messages show them); no shells.
  printf 'root:x:0:0:root:/:/sbin/nologin\nproxyuser:x:1001:1001:streaming proxy:/app:/sbin/nologin\n' > "$rt/etc/passwd"
  printf 'root:x:0:\nproxyuser:x:1001:\n' > "$rt/etc/group"
  chmod -R a+rX,go-w "$rt" "$ctx/app"
  say "runtime: $node_bin ($("$node_bin" --version)) + ${#libs[@]} libraries"
fi

say "building $IMAGE from $(basename "$DOCKERFILE") (inputs ${inputs_hash:0:12})"
log="$work/build.log"
# The legacy builder: this Docker (20.10) has no buildx; DOCKER_BUILDKIT=0 says so explicitly.
if ! DOCKER_BUILDKIT=0 docker build \
  --file "$DOCKERFILE" \
  --label "$HASH_LABEL=$inputs_hash" \
  --label "cloudtolocalllm.image-base=$BASE" \
  --label "org.opencontainers.image.title=cloudtolocalllm streaming proxy" \
  --tag "$IMAGE" \
  "$ctx" >"$log" 2>&1; then
  cat "$log" >&2
  die "docker build failed (output above)"
fi
# Untag leftovers of earlier builds of this tag so repeated builds do not pile up images.
docker image prune --force --filter "label=$HASH_LABEL" --filter dangling=true >/dev/null 2>&1 || true
say "built $IMAGE ($(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }'), $(elapsed))"
