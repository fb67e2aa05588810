#!/usr/bin/env bash
# Renders the nginx configuration of the deployment (server/deploy/nginx/: nginx.conf, conf.d/,
# snippets/) into a directory, filling its placeholders (NAMES in double braces).
#
#   scripts/deploy/render-nginx-conf.sh --out DIR [options]
#
# Options (each falls back to the environment variable named in brackets, then to the default):
#   --server-name NAME      public host name(s), space separated [DOMAIN] (required)
#   --https-port N          [HTTPS_PORT] 443
#   --http-port N           [HTTP_PORT] 80
#   --listen "A B"          addresses to listen on [NGINX_LISTEN_ADDRESSES]; default 0.0.0.0, plus
#                           [::] when this machine has IPv6
#   --upstream HOST:PORT    the cloud server [127.0.0.1:$PORT] 127.0.0.1:8080
#   --edge-upstream HOST:PORT  its edge routing port [127.0.0.1:$CTLL_EDGE_PORT] 127.0.0.1:8081
#   --tls-cert PATH         certificate chain as nginx sees it /etc/ctll-tls/fullchain.pem
#   --tls-key PATH          private key as nginx sees it /etc/ctll-tls/privkey.pem
#   --acme-root PATH        certbot's webroot as nginx sees it /var/www/acme
#   --run-dir PATH          pid file and temporary files /tmp
#   --error-log DEST        stderr
#   --access-log DEST       /dev/stdout
#   --worker-user "U G"     user/group of the worker processes "nginx nginx"; "" = none
#                           (nginx not started as root)
#   --health-port N         local health/status port [NGINX_HEALTH_PORT] 8088
#   --hsts-max-age N        Strict-Transport-Security max-age [HSTS_MAX_AGE] 63072000 (0 for trials)
#   --stream-timeout T      timeouts of streams and the bridge [NGINX_STREAM_TIMEOUT] 3600s
#   --body-stall-timeout T  a request body's longest silence on the way to a proxy
#                           [NGINX_BODY_STALL_TIMEOUT] 60s (keep it CTLL_BODY_STALL_MS)
#   --ollama-max-body SIZE  request body limit on /ollama/ [NGINX_OLLAMA_MAX_BODY] 100m
#   --rate-per-ip N         requests per second per client address [NGINX_RATE_PER_IP] 50
#   --burst-per-ip N        [NGINX_BURST_PER_IP] 200
#   --connections-per-ip N  [NGINX_CONNECTIONS_PER_IP] 256
#
# Prints "changed" or "unchanged" as its last line (the deploy script reloads nginx on "changed").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CTLL_TAG=render-nginx-conf
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$ROOT/scripts/deploy/lib.sh"
SRC="$ROOT/server/deploy/nginx"
# Bash 5.2 would put the matched text in place of & in a replacement; values never need that.
shopt -u patsub_replacement 2>/dev/null || true

out=""
server_name="${DOMAIN:-}"
https_port="${HTTPS_PORT:-443}"
http_port="${HTTP_PORT:-80}"
listen="${NGINX_LISTEN_ADDRESSES:-}"
upstream="127.0.0.1:${PORT:-8080}"
edge_upstream="127.0.0.1:${CTLL_EDGE_PORT:-8081}"
tls_cert=/etc/ctll-tls/fullchain.pem
tls_key=/etc/ctll-tls/privkey.pem
acme_root=/var/www/acme
run_dir=/tmp
error_log=stderr
access_log=/dev/stdout
worker_user="nginx nginx"
health_port="${NGINX_HEALTH_PORT:-8088}"
hsts_max_age="${HSTS_MAX_AGE:-63072000}"
stream_timeout="${NGINX_STREAM_TIMEOUT:-3600s}"
body_stall_timeout="${NGINX_BODY_STALL_TIMEOUT:-60s}"
ollama_max_body="${NGINX_OLLAMA_MAX_BODY:-100m}"
rate_per_ip="${NGINX_RATE_PER_IP:-50}"
burst_per_ip="${NGINX_BURST_PER_IP:-200}"
connections_per_ip="${NGINX_CONNECTIONS_PER_IP:-256}"

while [ $# -gt 0 ]; do
  opt="$1"
  case "$opt" in
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    --*) [ $# -ge 2 ] || die "$opt needs a value" ;;
    *) die "unknown argument: $opt (try --help)" ;;
  esac
  val="$2"
  case "$opt" in
    --out) out="$val" ;;
    --server-name) server_name="$val" ;;
    --https-port) https_port="$val" ;;
    --http-port) http_port="$val" ;;
    --listen) listen="$val" ;;
    --upstream) upstream="$val" ;;
    --edge-upstream) edge_upstream="$val" ;;
    --tls-cert) tls_cert="$val" ;;
    --tls-key) tls_key="$val" ;;
    --acme-root) acme_root="$val" ;;
    --run-dir) run_dir="$val" ;;
    --error-log) error_log="$val" ;;
    --access-log) access_log="$val" ;;
    --worker-user) worker_user="$val" ;;
    --health-port) health_port="$val" ;;
    --hsts-max-age) hsts_max_age="$val" ;;
    --stream-timeout) stream_timeout="$val" ;;
    --body-stall-timeout) body_stall_timeout="$val" ;;
    --ollama-max-body) ollama_max_body="$val" ;;
    --rate-per-ip) rate_per_ip="$val" ;;
    --burst-per-ip) burst_per_ip="$val" ;;
    --connections-per-ip) connections_per_ip="$val" ;;
    *) die "unknown option: $opt (try --help)" ;;
  esac
  shift 2
done

# --- validation: every value ends up inside nginx syntax, so only plain tokens get through ------
[ -n "$out" ] || die "--out DIR is required"
[ -n "$server_name" ] || die "no server name: pass --server-name or set DOMAIN (e.g. cloud.example.com)"
for n in $server_name; do
  [[ "$n" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]] || die "server name '$n' is not a host name"
done
port_ok() { if ! [[ "$2" =~ ^[0-9]{1,5}$ ]] || [ "$2" -lt 1 ] || [ "$2" -gt 65535 ]; then die "$1 '$2' must be a port number (1-65535)"; fi; }
port_ok --https-port "$https_port"
port_ok --http-port "$http_port"
port_ok --health-port "$health_port"
upstream_re='^([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):[0-9]{1,5}$'
[[ "$upstream" =~ $upstream_re ]] || die "--upstream '$upstream' must be HOST:PORT"
[[ "$edge_upstream" =~ $upstream_re ]] || die "--edge-upstream '$edge_upstream' must be HOST:PORT"
for p in "$tls_cert" "$tls_key" "$acme_root" "$run_dir" "$access_log"; do
  [[ "$p" =~ ^/[A-Za-z0-9._/-]*$ ]] || die "'$p' must be an absolute path of plain characters"
done
[[ "$error_log" == stderr || "$error_log" =~ ^/[A-Za-z0-9._/-]*$ ]] || die "--error-log must be stderr or an absolute path"
[[ -z "$worker_user" || "$worker_user" =~ ^[a-z_][a-z0-9_-]*( [a-z_][a-z0-9_-]*)?$ ]] || die "--worker-user '$worker_user' must be 'user [group]'"
[[ "$hsts_max_age" =~ ^[0-9]+$ ]] || die "HSTS_MAX_AGE '$hsts_max_age' must be a number of seconds"
[[ "$stream_timeout" =~ ^[0-9]+[smhd]?$ ]] || die "NGINX_STREAM_TIMEOUT '$stream_timeout' must be like 3600s or 2h"
[[ "$body_stall_timeout" =~ ^[0-9]+[smhd]?$ ]] || die "NGINX_BODY_STALL_TIMEOUT '$body_stall_timeout' must be like 60s"
[[ "$ollama_max_body" =~ ^[0-9]+[kKmMgG]?$ ]] || die "NGINX_OLLAMA_MAX_BODY '$ollama_max_body' must be like 100m"
for v in "$rate_per_ip" "$burst_per_ip" "$connections_per_ip"; do [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "'$v' must be a positive whole number"; done

if [ -z "$listen" ]; then
  listen="0.0.0.0"
  [ -e /proc/net/if_inet6 ] && listen="0.0.0.0 [::]"
fi
address_re='^([0-9.]+|\[[0-9a-fA-F:]+\])$'
for a in $listen; do
  [[ "$a" =~ $address_re ]] || die "listen address '$a' must be an IPv4 address or [IPv6]"
done
listen_lines() { # PORT FLAGS
  local a lines=""
  for a in $listen; do
    lines+="    listen $a:$1$2;"$'\n'
  done
  printf '%s' "${lines%$'\n'}"
}
first_name="${server_name%% *}"
public_origin="https://$first_name"
[ "$https_port" = 443 ] || public_origin+=":$https_port"

declare -A values=(
  [WORKER_USER]="$([ -n "$worker_user" ] && echo "user $worker_user;" || echo "# (no user directive: nginx runs unprivileged)")"
  [RUN_DIR]="$run_dir"
  [ERROR_LOG]="$error_log"
  [ACCESS_LOG]="$access_log"
  [SERVER_NAME]="$server_name"
  [PUBLIC_ORIGIN]="$public_origin"
  [UPSTREAM]="$upstream"
  [EDGE_UPSTREAM]="$edge_upstream"
  [LISTEN_HTTP]="$(listen_lines "$http_port" "")"
  [LISTEN_HTTPS]="$(listen_lines "$https_port" " ssl http2")"
  [LISTEN_HTTPS_DEFAULT]="$(listen_lines "$https_port" " ssl http2 default_server")"
  [TLS_CERT]="$tls_cert"
  [TLS_KEY]="$tls_key"
  [ACME_ROOT]="$acme_root"
  [HEALTH_PORT]="$health_port"
  [HSTS_MAX_AGE]="$hsts_max_age"
  [STREAM_TIMEOUT]="$stream_timeout"
  [BODY_STALL_TIMEOUT]="$body_stall_timeout"
  [OLLAMA_MAX_BODY]="$ollama_max_body"
  [RATE_PER_IP]="$rate_per_ip"
  [BURST_PER_IP]="$burst_per_ip"
  [CONNECTIONS_PER_IP]="$connections_per_ip"
)

stage="$(mktemp -d "${TMPDIR:-/tmp}/ctll-nginx-conf.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
(cd "$SRC" && find . -name '*.conf' -type f) | while read -r rel; do
  mkdir -p "$stage/$(dirname "$rel")"
  text="$(cat "$SRC/$rel")"
  for key in "${!values[@]}"; do text="${text//\{\{$key\}\}/${values[$key]}}"; done
  if [[ "$text" =~ \{\{([A-Z_]+)\}\} ]]; then die "$rel: no value for {{${BASH_REMATCH[1]}}}"; fi
  printf '%s\n' "$text" > "$stage/$rel"
done

mkdir -p "$out"
if diff -rq "$stage" "$out" >/dev/null 2>&1; then
  echo unchanged
else
  # Replace the files in place (the directory itself is bind-mounted into the container, so it
  # must stay the same directory); remove files no longer rendered.
  cp -R "$stage/." "$out/"
  (cd "$out" && find . -name '*.conf' -type f) | while read -r rel; do [ -e "$stage/$rel" ] || rm -f "$out/$rel"; done
  chmod -R a+rX,go-w "$out"
  echo changed
fi
