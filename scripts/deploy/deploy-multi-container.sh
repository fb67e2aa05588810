#!/usr/bin/env bash
# Deploys (or updates) the cloud side on this machine: nginx-proxy, api-backend,
# docker-api-filter and isolation-firewall from server/deploy/docker-compose.multi.yml
# (docs/deployment.md).
#
#   scripts/deploy/deploy-multi-container.sh [options]
#
#   --env-file FILE  the settings (default server/deploy/.env; see server/deploy/.env.example)
#   --build          build the images first, offline (scripts/deploy/build-images.sh)
#   --base B         with --build: scratch (default, no registry needed) or alpine
#   --ssl-setup      get a Let's Encrypt certificate for $DOMAIN with certbot --webroot (and
#                    install the renewal hook); keeps a valid one
#   --self-signed    use a self-signed certificate (a trial run without a public name); made
#                    when missing or expiring
#   --trial          allow running without Auth0 (the embedded issuer: anyone can sign in with
#                    any user name, and only from this machine). Never on a public server.
#   --dry-run        check everything and print what would be done, change nothing
#   --no-wait        do not wait for the services to become healthy
#   --down           stop the stack, then remove this stack's proxies and their networks
#   --status         show the services, their health and this stack's proxies
#   --swarm          deploy server/deploy/docker-stack.yml to the swarm this engine manages
#                    (docker stack deploy; with --down removes it, with --status lists its tasks;
#                    needs the cluster CA: scripts/deploy/make-cluster-ca.sh; docs/scaling.md)
#   -h, --help
#
# Idempotent: run it again after editing the settings or pulling a new version; it rebuilds only
# changed images, re-renders the nginx configuration (reloading nginx if it changed), keeps a
# valid certificate and recreates only containers whose configuration or image changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CTLL_TAG=deploy
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$ROOT/scripts/deploy/lib.sh"
COMPOSE_FILE="$ROOT/server/deploy/docker-compose.multi.yml"

env_file="$ROOT/server/deploy/.env"
do_build=0
base=scratch
ssl_setup=0
self_signed=0
trial=0
wait_healthy=1
action=up
swarm=0
while [ $# -gt 0 ]; do
  case "$1" in
    --env-file) shift; env_file="${1:?--env-file needs a file}" ;;
    --build) do_build=1 ;;
    --base) shift; base="${1:?--base needs scratch or alpine}" ;;
    --ssl-setup) ssl_setup=1 ;;
    --self-signed) self_signed=1 ;;
    --trial) trial=1 ;;
    --dry-run) DRY_RUN=1 ;;
    --no-wait) wait_healthy=0 ;;
    --down) action=down ;;
    --status) action=status ;;
    --swarm) swarm=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
  shift
done
export DRY_RUN
[ "$ssl_setup" = 1 ] && [ "$self_signed" = 1 ] && die "--ssl-setup and --self-signed exclude each other"
# An absolute path: docker-compose resolves a relative --env-file against the compose file's folder.
if [ -d "$(dirname "$env_file")" ]; then env_file="$(cd "$(dirname "$env_file")" && pwd)/$(basename "$env_file")"; fi

step() { printf '\n%s==> %s%s\n' "$_c_bold" "$*" "$_c_off"; }

# --- 1. prerequisites (all problems at once) ------------------------------------------------------
step "checking prerequisites"
problems=()
command -v docker >/dev/null || problems+=("the docker CLI is not installed (apt-get install -y docker.io)")
if command -v docker >/dev/null && ! docker info >/dev/null 2>&1; then
  problems+=("the Docker engine does not answer: start it (systemctl enable --now docker) and run this as root or a member of the docker group")
fi
COMPOSE="$(compose_cmd)" || [ "$swarm" = 1 ] || problems+=("docker-compose is not installed (apt-get install -y docker-compose, or the compose v2 plugin)")
[ -f "$env_file" ] || problems+=("settings file $env_file not found: cp server/deploy/.env.example $env_file, then edit it")
if [ "$action" = up ]; then
  command -v openssl >/dev/null || problems+=("openssl is not installed (apt-get install -y openssl)")
  [ "$ssl_setup" = 1 ] && ! command -v certbot >/dev/null && problems+=("certbot is not installed (apt-get install -y certbot); it renews through its systemd timer")
  command -v flock >/dev/null || problems+=("flock is not installed (apt-get install -y util-linux)")
fi
if [ ${#problems[@]} -gt 0 ]; then
  for p in "${problems[@]}"; do printf '%s%s: error:%s %s\n' "$_c_red" "$CTLL_TAG" "$_c_off" "$p" >&2; done
  exit 1
fi
say "docker $(docker version --format '{{.Server.Version}}' 2>/dev/null), $($COMPOSE version --short 2>/dev/null || echo compose)"

# --- 2. settings ----------------------------------------------------------------------------------
read_env_file "$env_file"
STACK="${CTLL_STACK_NAME:-cloudtolocalllm}"
[[ "$STACK" =~ ^[a-z0-9][a-z0-9_.-]{0,62}$ ]] || die "CTLL_STACK_NAME '$STACK' must be lowercase letters, digits, '-', '_' or '.'"
export CTLL_STACK_NAME="$STACK" COMPOSE_PROJECT_NAME="$STACK"
STATE="${CTLL_STATE_DIR:-/var/lib/cloudtolocalllm}"
[[ "$STATE" = /* ]] || die "CTLL_STATE_DIR '$STATE' must be an absolute path"
export CTLL_STATE_DIR="$STATE"
DOCKER_SOCKET="${DOCKER_SOCKET:-/var/run/docker.sock}"
export DOCKER_SOCKET
# On a swarm the socket is each node's (swarm.sh checks this one, and allows a template).
[ -S "$DOCKER_SOCKET" ] || [ "$swarm" = 1 ] || die "DOCKER_SOCKET $DOCKER_SOCKET is not a socket"
if [ -z "${DOCKER_GID:-}" ]; then DOCKER_GID="$(stat -c %g "$DOCKER_SOCKET" 2>/dev/null || stat -c %g /var/run/docker.sock)"; fi
export DOCKER_GID
compose() { $COMPOSE -f "$COMPOSE_FILE" -p "$STACK" --env-file "$env_file" "$@"; }

proxies_of_stack() {
  docker ps -aq --filter "label=cloudtolocalllm.stack=$STACK" --filter "label=cloudtolocalllm.type=streaming-proxy"
}
networks_of_stack() {
  docker network ls -q --filter "label=cloudtolocalllm.stack=$STACK" --filter "label=cloudtolocalllm.type=user-network"
}

# The operator's summaries from the api-backend's /metrics (the same figures Prometheus scrapes):
# proxies, their memory and CPU, the top users, firewall refusals, authentications, host limits.
# The token goes to curl on its standard input, never on its command line (ps shows that).
print_metrics_summary() {
  local port="${PORT:-8080}" text
  if [ -z "${METRICS_TOKEN:-}" ]; then warn "no METRICS_TOKEN in $env_file: no metrics summary"; return 0; fi
  if ! text="$(printf 'header = "Authorization: Bearer %s"\n' "$METRICS_TOKEN" | curl -sf --max-time 10 -K - "http://127.0.0.1:$port/metrics")"; then
    warn "the api-backend's /metrics on 127.0.0.1:$port does not answer: no metrics summary"
    return 0
  fi
  say "metrics (127.0.0.1:$port/metrics):"
  printf '%s\n' "$text" | awk '
    /^#/ { next }
    /^ctll_(proxies_running|proxies_unhealthy|proxies_max|proxy_memory_bytes|proxy_cpu_cores|proxy_top_memory_bytes|proxy_top_cpu_cores|proxies_near_limit|proxy_limit|proxy_resources_unreadable|firewall_refused_packets|firewall_refused_packets_by_user|proxy_starts_total|proxy_stops_total|auth_total|host_limit|host_limit_used)[{ ]/ { print "  " $0 }'
}

if [ "$swarm" = 1 ]; then
  # shellcheck source-path=SCRIPTDIR source=swarm.sh
  source "$ROOT/scripts/deploy/swarm.sh"
  case "$action" in
    status) swarm_status; exit 0 ;;
    down) swarm_down; exit 0 ;;
    *) swarm_require_manager; swarm_check_ca ;;
  esac
fi

if [ "$action" = status ]; then
  compose ps
  say "proxies of stack $STACK: $(proxies_of_stack | wc -l) container(s), $(networks_of_stack | wc -l) network(s)"
  print_metrics_summary
  exit 0
fi

if [ "$action" = down ]; then
  step "stopping stack $STACK"
  run $COMPOSE -f "$COMPOSE_FILE" -p "$STACK" --env-file "$env_file" down --remove-orphans --volumes
  step "removing the proxies and networks of stack $STACK (label cloudtolocalllm.stack=$STACK)"
  mapfile -t ids < <(proxies_of_stack)
  [ ${#ids[@]} -eq 0 ] || run docker rm -f "${ids[@]}"
  # A proxy's network can be removed once the engine has detached its container.
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    mapfile -t nets < <(networks_of_stack)
    [ ${#nets[@]} -eq 0 ] && break
    run docker network rm "${nets[@]}" 2>/dev/null || sleep 1
    [ "$DRY_RUN" = 1 ] && break
  done
  say "removed ${#ids[@]} proxy container(s); stack $STACK is down"
  exit 0
fi

# Validation of what the stack needs, all at once.
problems=()
DOMAIN="${DOMAIN:-}"
[ -n "$DOMAIN" ] || problems+=("DOMAIN is not set: the public host name of this server (e.g. cloud.example.com)")
[[ -z "$DOMAIN" || "$DOMAIN" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]] || problems+=("DOMAIN '$DOMAIN' is not a host name")
HTTPS_PORT="${HTTPS_PORT:-443}"; HTTP_PORT="${HTTP_PORT:-80}"
[[ "$HTTPS_PORT" =~ ^[0-9]+$ && "$HTTP_PORT" =~ ^[0-9]+$ ]] || problems+=("HTTPS_PORT and HTTP_PORT must be port numbers")
if [ -z "${AUTH0_DOMAIN:-}" ]; then
  if [ "$trial" = 1 ]; then
    warn "no AUTH0_DOMAIN: the embedded issuer signs in ANY user name without a password, reachable only on this machine (127.0.0.1). For trials only."
  else
    problems+=("AUTH0_DOMAIN is not set: a public server needs Auth0 (docs/deployment.md, \"Auth0\"); --trial runs the embedded issuer for a local trial")
  fi
else
  [ -n "${AUTH0_AUDIENCE:-}" ] || problems+=("AUTH0_AUDIENCE is not set: the identifier of your Auth0 API")
  [ -n "${AUTH0_DESKTOP_CLIENT_ID:-}" ] || problems+=("AUTH0_DESKTOP_CLIENT_ID is not set: the client id of your Auth0 native application")
fi
if [ "$ssl_setup" = 1 ]; then
  [[ "${CERTBOT_EMAIL:-}" =~ ^[^@[:space:]]+@[^@[:space:]]+$ ]] || problems+=("CERTBOT_EMAIL must be an e-mail address for Let's Encrypt")
  [ "$HTTP_PORT" = 80 ] || problems+=("--ssl-setup needs HTTP_PORT=80 (Let's Encrypt connects to port 80)")
fi
if [ ${#problems[@]} -gt 0 ]; then
  for p in "${problems[@]}"; do printf '%s%s: error:%s %s\n' "$_c_red" "$CTLL_TAG" "$_c_off" "$p" >&2; done
  exit 1
fi
public_url="https://$DOMAIN"; [ "$HTTPS_PORT" = 443 ] || public_url+=":$HTTPS_PORT"
export CTLL_PUBLIC_URL="${CTLL_PUBLIC_URL:-$public_url}"

# METRICS_TOKEN: generated once and kept in the settings file.
if [ -z "${METRICS_TOKEN:-}" ]; then
  if [ "$DRY_RUN" = 1 ]; then
    say "[dry-run] would generate METRICS_TOKEN and write it to $env_file"
  else
    METRICS_TOKEN="$(openssl rand -hex 32)"
    if grep -q '^METRICS_TOKEN=' "$env_file"; then
      sed -i "s/^METRICS_TOKEN=.*/METRICS_TOKEN=$METRICS_TOKEN/" "$env_file"
    else
      printf '\nMETRICS_TOKEN=%s\n' "$METRICS_TOKEN" >> "$env_file"
    fi
    say "generated METRICS_TOKEN (in $env_file; Prometheus sends it as a Bearer token)"
  fi
  export METRICS_TOKEN
fi
say "stack $STACK: https://$DOMAIN$([ "$HTTPS_PORT" = 443 ] || echo ":$HTTPS_PORT") -> nginx -> 127.0.0.1:${PORT:-8080}, state in $STATE"

# --- 3. images ------------------------------------------------------------------------------------
API_IMAGE="${CTLL_API_IMAGE:-cloudtolocalllm/api-backend:local}"
NGINX_IMAGE="${CTLL_NGINX_IMAGE:-cloudtolocalllm/nginx:local}"
PROXY_IMAGE="${CTLL_PROXY_IMAGE:-cloudtolocalllm/streaming-proxy:local}"
if [ "$do_build" = 1 ]; then
  step "building images ($base)"
  build_args=(--base "$base")
  [ "$DRY_RUN" = 1 ] && build_args+=(--dry-run)
  CTLL_API_IMAGE="$API_IMAGE" CTLL_NGINX_IMAGE="$NGINX_IMAGE" CTLL_PROXY_IMAGE="$PROXY_IMAGE" \
    "$ROOT/scripts/deploy/build-images.sh" "${build_args[@]}"
else
  missing=()
  for image in "$API_IMAGE" "$NGINX_IMAGE" "$PROXY_IMAGE"; do
    docker image inspect "$image" >/dev/null 2>&1 || missing+=("$image")
  done
  [ ${#missing[@]} -eq 0 ] || die "missing image(s): ${missing[*]}; run again with --build (or load them: docker load < images.tar)"
  say "images present: $API_IMAGE, $NGINX_IMAGE, $PROXY_IMAGE"
fi

# --- 4. state directory, certificates, nginx configuration -----------------------------------------
step "certificates and nginx configuration in $STATE"
TLS="$STATE/tls"
ACME="$STATE/acme"
run mkdir -p "$STATE/nginx" "$TLS" "$ACME/.well-known/acme-challenge"
run chmod 755 "$STATE" "$ACME" "$ACME/.well-known" "$ACME/.well-known/acme-challenge"
run chmod 700 "$TLS"

make_self_signed() {
  local why="$1"
  say "creating a self-signed certificate for $DOMAIN ($why)"
  run openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 90 \
    -subj "/CN=$DOMAIN" -addext "subjectAltName=DNS:$DOMAIN" \
    -keyout "$TLS/privkey.pem.new" -out "$TLS/fullchain.pem.new"
  run chmod 600 "$TLS/privkey.pem.new"
  run mv -f "$TLS/privkey.pem.new" "$TLS/privkey.pem"
  run mv -f "$TLS/fullchain.pem.new" "$TLS/fullchain.pem"
  run touch "$TLS/self-signed"
}
cert="$TLS/fullchain.pem"
have_cert=0
[ -s "$cert" ] && [ -s "$TLS/privkey.pem" ] && have_cert=1
if [ "$self_signed" = 1 ]; then
  if [ "$have_cert" = 0 ]; then
    make_self_signed "none yet"
  elif [ ! -e "$TLS/self-signed" ]; then
    die "$cert is not self-signed (a real certificate?); remove it first if you really want a self-signed one"
  elif ! openssl x509 -in "$cert" -noout -checkend $((7 * 86400)) >/dev/null 2>&1; then
    make_self_signed "the old one expires within 7 days"
  elif ! openssl x509 -in "$cert" -noout -ext subjectAltName 2>/dev/null | grep -q "DNS:$DOMAIN\b"; then
    make_self_signed "the old one is for another name"
  else
    say "self-signed certificate for $DOMAIN present, valid for more than 7 days"
  fi
elif [ "$have_cert" = 0 ]; then
  if [ "$ssl_setup" = 1 ]; then
    make_self_signed "temporary: nginx needs one to start before Let's Encrypt can check the domain"
  else
    die "no TLS certificate in $TLS: run with --ssl-setup (Let's Encrypt) or --self-signed (trial)"
  fi
else
  say "certificate present: $(openssl x509 -in "$cert" -noout -subject -enddate 2>/dev/null | tr '\n' ' ')"
fi

render_nginx() {
  local hsts="${HSTS_MAX_AGE:-63072000}"
  # A self-signed trial must not make browsers pin HTTPS for this name for two years.
  if [ -e "$TLS/self-signed" ] || [ "$self_signed" = 1 ]; then hsts=0; fi
  if [ "$DRY_RUN" = 1 ]; then
    printf '%s  [dry-run] render server/deploy/nginx -> %s (HSTS max-age %s)%s\n' "$_c_dim" "$STATE/nginx" "$hsts" "$_c_off"
    nginx_changed=0
    return
  fi
  local result
  result="$(HSTS_MAX_AGE="$hsts" DOMAIN="$DOMAIN" HTTPS_PORT="$HTTPS_PORT" HTTP_PORT="$HTTP_PORT" \
    "$ROOT/scripts/deploy/render-nginx-conf.sh" --out "$STATE/nginx" --upstream "127.0.0.1:${PORT:-8080}" \
    --edge-upstream "127.0.0.1:${CTLL_EDGE_PORT:-8081}" | tail -1)"
  say "nginx configuration: $result (HSTS max-age $hsts)"
  nginx_changed=0
  [ "$result" = changed ] && nginx_changed=1
  # Checked with the same binary before any container sees it.
  if [ "$nginx_changed" = 1 ]; then
    docker run --rm --network none --read-only --tmpfs /tmp \
      -v "$STATE/nginx:/etc/nginx:ro" -v "$TLS:/etc/ctll-tls:ro" -v "$ACME:/var/www/acme:ro" \
      --entrypoint nginx "$NGINX_IMAGE" -t -q -c /etc/nginx/nginx.conf \
      || die "the rendered nginx configuration does not pass nginx -t (output above)"
  fi
}
nginx_changed=0
render_nginx

if [ "$swarm" = 1 ]; then
  # Kernel limits are each node's own: docs/scaling.md lists them for every node.
  swarm_up
  step "done"
  say "stack $STACK on the swarm: $CTLL_PUBLIC_URL on every node's address; status: $0 --swarm --status --env-file $env_file"
  exit 0
fi

reload_nginx() {
  local id
  id="$(compose ps -q nginx-proxy 2>/dev/null || true)"
  if [ -n "$id" ] && [ "$(docker inspect -f '{{.State.Running}}' "$id" 2>/dev/null)" = true ]; then
    run docker kill -s HUP "$id"
    say "nginx reloaded"
  fi
}

# --- 4b. kernel limits for many proxies ------------------------------------------------------------
# A stock kernel caps a host at about 500 proxies (the neighbour table: 2 entries per proxy, one
# table for all network namespaces) and about 1,300 (pids: some 25 threads per proxy), long before
# CPU or memory run out (docs/benchmarks-proxies.md). The values are RECOMMENDED_SYSCTLS of
# server/src/runtime/docker/host-limits.ts; settings are only ever raised, never lowered.
# CTLL_TUNE_KERNEL=0 leaves the kernel alone (the api-backend then logs the ceiling at start).
SYSCTL_FILE="${CTLL_SYSCTL_FILE:-/etc/sysctl.d/60-cloudtolocalllm.conf}"
WANT_SYSCTLS=(
  net.ipv4.neigh.default.gc_thresh1=8192
  net.ipv4.neigh.default.gc_thresh2=16384
  net.ipv4.neigh.default.gc_thresh3=32768
  kernel.pid_max=4194304
)
# Through /proc/sys directly: the sysctl command (procps) is not on every minimal system.
set_sysctl() { printf '%s\n' "$2" > "/proc/sys/${1//.//}"; }
if [ "${CTLL_TUNE_KERNEL:-1}" = 1 ]; then
  step "kernel limits for many proxies ($SYSCTL_FILE)"
  sysctl_lines=()
  for setting in "${WANT_SYSCTLS[@]}"; do
    key="${setting%%=*}"; want="${setting#*=}"
    have="$(cat "/proc/sys/${key//.//}" 2>/dev/null || echo 0)"
    if [ "$have" -gt "$want" ]; then want="$have"; fi
    sysctl_lines+=("$key = $want")
    if [ "$have" -lt "$want" ] && ! run set_sysctl "$key" "$want" 2>/dev/null; then
      warn "could not raise $key to $want (a container without CAP_SYS_ADMIN?); the api-backend will log how many proxies this host holds"
    fi
  done
  if [ "$DRY_RUN" = 1 ]; then
    say "[dry-run] would write $SYSCTL_FILE: ${sysctl_lines[*]}"
  else
    if printf '%s\n' "# CloudToLocalLLM: room for thousands of per-user proxies (scripts/deploy/deploy-multi-container.sh)" "${sysctl_lines[@]}" > "$SYSCTL_FILE"; then
      say "kernel limits: ${sysctl_lines[*]} (kept across reboots in $SYSCTL_FILE)"
    else
      warn "could not write $SYSCTL_FILE: the kernel limits are back to the distribution's after a reboot"
    fi
  fi
fi

# --- 5. up ------------------------------------------------------------------------------------------
step "starting stack $STACK"
was_running="$(compose ps -q nginx-proxy 2>/dev/null || true)"
run $COMPOSE -f "$COMPOSE_FILE" -p "$STACK" --env-file "$env_file" up -d --remove-orphans
[ "$nginx_changed" = 1 ] && [ -n "$was_running" ] && reload_nginx

wait_for_health() {
  local deadline=$(( $(date +%s) + ${CTLL_DEPLOY_WAIT_SECONDS:-180} )) service id status all
  while :; do
    all=1
    for service in isolation-firewall docker-api-filter api-backend nginx-proxy; do
      id="$(compose ps -q "$service" 2>/dev/null || true)"
      status="$( [ -n "$id" ] && docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null || echo missing)"
      [ "$status" = healthy ] || all=0
      statuses[$service]="$status"
    done
    [ "$all" = 1 ] && return 0
    if [ "$(date +%s)" -ge "$deadline" ]; then
      for service in "${!statuses[@]}"; do warn "$service: ${statuses[$service]}"; done
      warn "last log lines of the services that are not healthy:"
      for service in "${!statuses[@]}"; do
        [ "${statuses[$service]}" = healthy ] || compose logs --tail 20 "$service" >&2 || true
      done
      return 1
    fi
    sleep 2
  done
}
declare -A statuses=()
if [ "$DRY_RUN" = 0 ] && [ "$wait_healthy" = 1 ]; then
  say "waiting for isolation-firewall, docker-api-filter, api-backend and nginx-proxy to be healthy"
  wait_for_health || die "the stack did not become healthy within ${CTLL_DEPLOY_WAIT_SECONDS:-180} s (docs/operations.md, \"Common failures\")"
  say "all services healthy"
fi

# --- 6. Let's Encrypt ----------------------------------------------------------------------------
if [ "$ssl_setup" = 1 ]; then
  step "Let's Encrypt certificate for $DOMAIN (certbot --webroot)"
  hook="CTLL_STATE_DIR=$(printf %q "$STATE") CTLL_STACK_NAME=$STACK $(printf %q "$ROOT/scripts/deploy/install-cert.sh")"
  certbot_args=(certonly --webroot -w "$ACME" -d "$DOMAIN" --email "$CERTBOT_EMAIL" --agree-tos --non-interactive
    --keep-until-expiring --key-type ecdsa --deploy-hook "$hook")
  [ "${CERTBOT_STAGING:-0}" = 1 ] && certbot_args+=(--staging)
  run certbot "${certbot_args[@]}" || die "certbot failed: is $DOMAIN's DNS pointing here, and port 80 open? (docs/operations.md, \"Certificates\")"
  # A certificate certbot already had (kept, so no deploy hook ran) is installed now.
  if [ "$DRY_RUN" = 0 ] && [ -e "$TLS/self-signed" ] && [ -d "/etc/letsencrypt/live/$DOMAIN" ]; then
    RENEWED_LINEAGE="/etc/letsencrypt/live/$DOMAIN" CTLL_STATE_DIR="$STATE" CTLL_STACK_NAME="$STACK" \
      "$ROOT/scripts/deploy/install-cert.sh"
  fi
  render_nginx
  [ "$nginx_changed" = 1 ] && reload_nginx
  say "renewals: certbot's systemd timer (systemctl list-timers certbot.timer) runs the same hook"
fi

# --- 7. a look from the outside ------------------------------------------------------------------
if [ "$DRY_RUN" = 0 ] && [ "$wait_healthy" = 1 ] && command -v curl >/dev/null; then
  curl_tls=(--cacert "$cert")
  [ -e "$TLS/self-signed" ] || curl_tls=()
  if health="$(curl -fsS --max-time 10 "${curl_tls[@]}" --resolve "$DOMAIN:$HTTPS_PORT:127.0.0.1" "https://$DOMAIN:$HTTPS_PORT/health" 2>&1)"; then
    say "https://$DOMAIN$([ "$HTTPS_PORT" = 443 ] || echo ":$HTTPS_PORT")/health through nginx: $health"
  else
    warn "https://$DOMAIN:$HTTPS_PORT/health through nginx failed: $health"
  fi
fi

step "done"
cat <<EOF
  site            $CTLL_PUBLIC_URL   (web client at /app/, docs at /docs/)
  Ollama API      $CTLL_PUBLIC_URL/ollama   (Bearer token of a signed-in user)
  desktop bridge  ${CTLL_PUBLIC_URL/https:/wss:}/ws/bridge
  metrics         $CTLL_PUBLIC_URL/metrics  (Authorization: Bearer \$METRICS_TOKEN from $env_file)
  logs            $COMPOSE -f $COMPOSE_FILE -p $STACK logs -f api-backend
  status          $0 --status --env-file $env_file
EOF
