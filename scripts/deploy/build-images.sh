#!/usr/bin/env bash
# Builds the images of the multi-container deployment (server/deploy/docker-compose.multi.yml).
#
#   scripts/deploy/build-images.sh                     build what changed (all images)
#   scripts/deploy/build-images.sh --only api-backend  only these (comma-separated:
#                                                      api-backend, nginx, streaming-proxy)
#   scripts/deploy/build-images.sh --force             rebuild even if the inputs did not change
#   scripts/deploy/build-images.sh --contexts-only     only write the build contexts into
#                                                      server/deploy/build/<image>/ (what
#                                                      `docker-compose build` then uses)
#   scripts/deploy/build-images.sh --base alpine       FROM node:20-alpine / nginx:1.27-alpine
#                                                      (needs a registry); default: scratch
#   scripts/deploy/build-images.sh --dry-run           print what it would do
#
# scratch (default, works offline): every image is FROM scratch with this machine's binaries and
# the libraries `ldd` lists for them: node (api-backend, streaming proxy), iptables (the image's
# isolation-firewall service: the same nft/legacy backend as this host's Docker), nginx and a static busybox (nginx-proxy).
# So build on the machine that runs the stack, or on one with the same Debian/Ubuntu release
# (docs/deployment.md). Needs: docker, node >= 20.19 with `npm run setup` done (esbuild), nginx and
# busybox-static (apt-get install -y nginx busybox-static).
#
# Images (tags from the environment or the settings file given with --env-file):
#   CTLL_API_IMAGE    cloudtolocalllm/api-backend:local      the cloud server, the Docker API filter, the isolation firewall
#   CTLL_NGINX_IMAGE  cloudtolocalllm/nginx:local            the edge
#   CTLL_PROXY_IMAGE  cloudtolocalllm/streaming-proxy:local  per-user proxies (scripts/build-proxy-image.sh)
#
# Idempotent: each image carries a label with the SHA-256 of its inputs; an image whose label
# matches is not rebuilt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CTLL_TAG=build-images
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$ROOT/scripts/deploy/lib.sh"

base=scratch
only="api-backend,nginx,streaming-proxy"
force=0
contexts_only=0
env_file=""
while [ $# -gt 0 ]; do
  case "$1" in
    --base) shift; base="${1:?--base needs scratch or alpine}" ;;
    --only) shift; only="${1:?--only needs a list}" ;;
    --force) force=1 ;;
    --contexts-only) contexts_only=1 ;;
    --env-file) shift; env_file="${1:?--env-file needs a file}" ;;
    --dry-run) DRY_RUN=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
  shift
done
[ -n "$env_file" ] && read_env_file "$env_file"
case "$base" in scratch|alpine) ;; *) die "--base must be scratch or alpine, not '$base'" ;; esac
IFS=',' read -r -a wanted <<< "$only"
for w in "${wanted[@]}"; do
  case "$w" in api-backend|nginx|streaming-proxy) ;; *) die "--only: unknown image '$w' (api-backend, nginx, streaming-proxy)" ;; esac
done
want() { [[ ",$only," == *",$1,"* ]]; }

API_IMAGE="${CTLL_API_IMAGE:-cloudtolocalllm/api-backend:local}"
NGINX_IMAGE="${CTLL_NGINX_IMAGE:-cloudtolocalllm/nginx:local}"
PROXY_IMAGE="${CTLL_PROXY_IMAGE:-cloudtolocalllm/streaming-proxy:local}"
BUILD="$ROOT/server/deploy/build"
DOCKERFILES="$ROOT/server/deploy/docker"
ESBUILD="${ESBUILD:-$ROOT/node_modules/.bin/esbuild}"
HASH_LABEL="cloudtolocalllm.inputs-sha256"
started=$(date +%s)

# --- prerequisites, all reported at once -------------------------------------------------------
problems=()
command -v docker >/dev/null || problems+=("the docker CLI is not installed (apt-get install -y docker.io)")
if [ "$contexts_only" = 0 ] && command -v docker >/dev/null && ! docker info >/dev/null 2>&1; then
  problems+=("the Docker engine does not answer (start it: systemctl start docker, or dockerd &)")
fi
if want api-backend || want streaming-proxy; then
  [ -x "$ESBUILD" ] || problems+=("esbuild not found at $ESBUILD: run 'npm run setup' in $ROOT first")
  if [ "$base" = scratch ]; then
    command -v node >/dev/null || problems+=("node is not installed (the scratch images copy this machine's node; Node >= 20.19)")
  fi
fi
if want api-backend && [ "$base" = scratch ]; then
  command -v iptables >/dev/null || [ -x /usr/sbin/iptables ] || problems+=("iptables is not installed (apt-get install -y iptables)")
fi
if want nginx && [ "$base" = scratch ]; then
  [ -x /usr/sbin/nginx ] || problems+=("nginx is not installed: the offline nginx image copies it (apt-get install -y nginx; the service need not run)")
  command -v busybox >/dev/null || problems+=("busybox is not installed: the nginx image's health check uses it (apt-get install -y busybox-static)")
fi
if [ ${#problems[@]} -gt 0 ]; then
  for p in "${problems[@]}"; do printf '%s: error: %s\n' "$CTLL_TAG" "$p" >&2; done
  exit 1
fi

if [ "$DRY_RUN" = 1 ]; then
  say "would build (base $base): $(want api-backend && echo "$API_IMAGE ")$(want nginx && echo "$NGINX_IMAGE ")$(want streaming-proxy && echo "$PROXY_IMAGE")"
  want api-backend && say "would bundle server/src/main.ts, server/docker-api-filter and server/src/firewall into $BUILD/api-backend/app"
  want nginx && say "would copy /usr/sbin/nginx, busybox and their libraries into $BUILD/nginx/runtime"
  want streaming-proxy && run env IMAGE="$PROXY_IMAGE" BASE="$base" "$ROOT/scripts/build-proxy-image.sh"
  exit 0
fi

exec 9>"${TMPDIR:-/tmp}/ctll-build-images.lock"
flock 9

# Empties a context directory but keeps its .gitignore (the directory is tracked so that
# `docker-compose config` finds it on a fresh checkout).
reset_context() {
  local dir="$1"
  mkdir -p "$dir"
  find "$dir" -mindepth 1 -maxdepth 1 ! -name .gitignore -exec rm -rf {} +
}

# The hash of a context: every file's path, mode and content (symlinks by target).
context_hash() {
  (cd "$1" && find . -mindepth 1 ! -name .gitignore \( -type f -o -type l -o -type d \) -print0 | LC_ALL=C sort -z |
    while IFS= read -r -d '' f; do
      if [ -L "$f" ]; then printf 'L %s %s\n' "$f" "$(readlink "$f")"
      elif [ -d "$f" ]; then printf 'D %s %s\n' "$f" "$(stat -c %a "$f")"
      else printf 'F %s %s %s\n' "$f" "$(stat -c %a "$f")" "$(sha256sum < "$f" | cut -c1-64)"; fi
    done) | sha256sum | cut -c1-64
}

build_image() {
  local image="$1" ctx="$2" title="$3" hash current log
  hash="$(context_hash "$ctx")"
  current="$(docker image inspect --format "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$image" 2>/dev/null || true)"
  if [ "$force" = 0 ] && [ "$current" = "$hash" ]; then
    say "$image is up to date (inputs ${hash:0:12})"
    return 0
  fi
  say "building $image (inputs ${hash:0:12})"
  log="$(mktemp)"
  if ! DOCKER_BUILDKIT=0 docker build --file "$ctx/Dockerfile" \
      --label "$HASH_LABEL=$hash" --label "org.opencontainers.image.title=$title" \
      --label "cloudtolocalllm.image-base=$base" \
      --tag "$image" "$ctx" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    die "docker build of $image failed (output above)"
  fi
  rm -f "$log"
  docker image prune --force --filter "label=$HASH_LABEL" --filter dangling=true >/dev/null 2>&1 || true
  say "built $image ($(docker image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
}

# node and its libraries, plus names for the ids containers run as (no shells anywhere).
node_runtime() {
  local rt="$1"
  copy_with_libs "$(command -v node)" "$rt"
  # The image's node is at /usr/bin/node whatever the host's path was.
  if [ ! -e "$rt/usr/bin/node" ]; then
    mkdir -p "$rt/usr/bin"
    mv "$rt$(command -v node)" "$rt/usr/bin/node"
  fi
  mkdir -p "$rt/etc"
}

ESBUILD_BANNER="import { createRequire as __ctllCreateRequire } from 'node:module'; import { fileURLToPath as __ctllFileURLToPath } from 'node:url'; import { dirname as __ctllDirname } from 'node:path'; const require = __ctllCreateRequire(import.meta.url); const __filename = __ctllFileURLToPath(import.meta.url); const __dirname = __ctllDirname(__filename);"
bundle() {
  # ESM bundle; the banner gives CommonJS dependencies require/__dirname. Native add-ons
  # (ssh2's and cpu-features' optional .node files) stay out: both fall back to JavaScript.
  # Run from the repository root so the bundle holds relative paths only (stable hash).
  (cd "$ROOT" && "$ESBUILD" "$1" --bundle --platform=node --target=node20 --format=esm \
    --external:'*.node' --banner:js="$ESBUILD_BANNER" --legal-comments=none --log-level=warning \
    --outfile="$2") || die "esbuild could not bundle $1"
}

# --- api-backend --------------------------------------------------------------------------------
if want api-backend; then
  ctx="$BUILD/api-backend"
  reset_context "$ctx"
  mkdir -p "$ctx/app" "$ctx/run/ctll-docker"
  : > "$ctx/run/ctll-docker/.keep"
  bundle server/src/main.ts "$ctx/app/server.mjs"
  bundle server/docker-api-filter/docker-api-filter.ts "$ctx/app/docker-api-filter.mjs"
  bundle server/src/firewall/cli.ts "$ctx/app/isolation-firewall.mjs"
  cp "$DOCKERFILES/api-healthcheck.mjs" "$ctx/app/healthcheck.mjs"

  # The web client, when the project has one (scripts/build-web.ts writes server/dist/web).
  if grep -q '"build:web"' "$ROOT/package.json" 2>/dev/null; then
    (cd "$ROOT" && npm run --silent build:web) || die "npm run build:web failed"
  elif [ -f "$ROOT/scripts/build-web.ts" ]; then
    (cd "$ROOT" && node_modules/.bin/tsx scripts/build-web.ts) || die "scripts/build-web.ts failed"
  fi
  if [ -d "$ROOT/server/dist/web" ]; then
    cp -R "$ROOT/server/dist/web" "$ctx/app/web"
    say "web client: $(find "$ctx/app/web" -type f | wc -l) files from server/dist/web"
  else
    warn "no web client (server/dist/web is missing): /, /app/ and /docs/ will answer 404"
  fi

  if [ "$base" = scratch ]; then
    rt="$ctx/runtime"
    node_runtime "$rt"
    # iptables as this host has it (xtables-nft-multi or xtables-legacy-multi), under the names the
    # runtime calls, with the extension modules it loads (conntrack, addrtype, REJECT, tcp);
    # iptables-restore adds the firewall's per-bridge counting rules in one call (firewall-counters.ts).
    ipt="$(readlink -f "$(command -v iptables || echo /usr/sbin/iptables)")"
    copy_with_libs "$ipt" "$rt"
    multi="$(basename "$ipt")"
    for name in iptables ip6tables iptables-restore; do
      [ "$ipt" = "/usr/sbin/$multi" ] || { mkdir -p "$rt/usr/sbin"; cp -L "$ipt" "$rt/usr/sbin/$multi"; }
      ln -sf "$multi" "$rt/usr/sbin/$name"
    done
    xt="$(dirname "$(find /usr/lib /lib -name libxt_standard.so -print -quit 2>/dev/null)")"
    [ -d "$xt" ] || die "the iptables extension modules (libxt_standard.so) were not found"
    mkdir -p "$rt$xt"
    cp -L "$xt"/*.so "$rt$xt/"
    cp /etc/protocols "$rt/etc/protocols" 2>/dev/null || printf 'ip 0 IP\nicmp 1 ICMP\ntcp 6 TCP\nudp 17 UDP\nipv6-icmp 58 IPv6-ICMP\n' > "$rt/etc/protocols"
    printf 'root:x:0:0:root:/:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n' > "$rt/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' > "$rt/etc/group"
    chmod -R a+rX,go-w "$rt"
    say "api-backend runtime: node $(node --version), $(basename "$ipt")"
  fi
  cp "$DOCKERFILES/api-backend.$base.Dockerfile" "$ctx/Dockerfile"
  chmod -R a+rX,go-w "$ctx/app"
  [ "$contexts_only" = 1 ] || build_image "$API_IMAGE" "$ctx" "cloudtolocalllm api-backend"
fi

# --- nginx --------------------------------------------------------------------------------------
if want nginx; then
  ctx="$BUILD/nginx"
  reset_context "$ctx"
  if [ "$base" = scratch ]; then
    rt="$ctx/runtime"
    copy_with_libs /usr/sbin/nginx "$rt"
    mkdir -p "$rt/bin" "$rt/etc"
    cp -L "$(command -v busybox)" "$rt/bin/busybox"
    ldd "$rt/bin/busybox" >/dev/null 2>&1 && copy_with_libs "$(command -v busybox)" "$rt" # a dynamic busybox: its libraries too
    printf 'root:x:0:0:root:/:/sbin/nologin\nnginx:x:101:101:nginx:/nonexistent:/sbin/nologin\n' > "$rt/etc/passwd"
    printf 'root:x:0:\nnginx:x:101:\n' > "$rt/etc/group"
    # The mount points (configuration, certificates, ACME webroot) and a tmpfs for nginx's files.
    mkdir -p "$rt/etc/nginx" "$rt/etc/ctll-tls" "$rt/var/www/acme" "$rt/tmp"
    chmod -R a+rX,go-w "$rt"
    chmod 1777 "$rt/tmp"
    say "nginx runtime: $(/usr/sbin/nginx -v 2>&1 | sed 's/^nginx version: //'), busybox"
  fi
  cp "$DOCKERFILES/nginx.$base.Dockerfile" "$ctx/Dockerfile"
  [ "$contexts_only" = 1 ] || build_image "$NGINX_IMAGE" "$ctx" "cloudtolocalllm nginx"
fi

# --- streaming proxy ------------------------------------------------------------------------------
if want streaming-proxy; then
  # The context for `docker-compose --profile build-only build streaming-proxy-base`.
  ctx="$BUILD/streaming-proxy"
  reset_context "$ctx"
  "$ROOT/scripts/build-proxy-image.sh" --context "$ctx" >/dev/null
  if [ "$base" = scratch ]; then
    node_runtime "$ctx/runtime"
    printf 'root:x:0:0:root:/:/sbin/nologin\nproxyuser:x:1001:1001:streaming proxy:/app:/sbin/nologin\n' > "$ctx/runtime/etc/passwd"
    printf 'root:x:0:\nproxyuser:x:1001:\n' > "$ctx/runtime/etc/group"
    chmod -R a+rX,go-w "$ctx/runtime"
    cp "$ROOT/scripts/proxy-image/scratch.Dockerfile" "$ctx/Dockerfile"
  else
    cp "$ROOT/server/docker/streaming-proxy.Dockerfile" "$ctx/Dockerfile"
  fi
  # The image itself: the project's own builder (same layout, idempotent by input hash).
  [ "$contexts_only" = 1 ] || IMAGE="$PROXY_IMAGE" BASE="$base" "$ROOT/scripts/build-proxy-image.sh"
fi

say "done in $(( $(date +%s) - started )) s"
