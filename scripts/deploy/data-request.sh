#!/usr/bin/env bash
# Answers a user's request about their data on the deployed stack (docs/compliance.md). What the
# cloud side keeps about one user is the log lines that name their user hash (the SHA-256 of the
# user id, the token's `sub`: whole in the audit log and Docker names, its first 12 hex digits in
# the server's other log lines, so lines are matched on those 12) and, while it runs, their proxy
# container and network.
#
#   scripts/deploy/data-request.sh hash   USER_ID
#   scripts/deploy/data-request.sh access USER_ID | --hash HASH [FILE...]
#   scripts/deploy/data-request.sh erase  USER_ID | --hash HASH [--restart] [--dry-run] [FILE...]
#
#   hash     prints the user's hash (what every log line and Docker object names them by)
#   access   prints every line that names the user, then their proxy and network if running, and
#            the client addresses their lines hold (to look up nginx's access log, which names no
#            user: see docs/compliance.md)
#   erase    deletes those lines and removes the user's proxy container and network (its own log
#            goes with it); prints how many lines it deleted where
#
# Without FILE: the logs Docker keeps (json-file, rotated files included) of this stack's
# api-backend and docker-api-filter containers, found by their labels (cloudtolocalllm.stack =
# CTLL_STACK_NAME, cloudtolocalllm.role). Docker appends to a running container's log, so erase
# refuses a running container unless --restart: then it stops the api-backend and the filter,
# edits their logs and starts them again (a few seconds; other users' proxies keep running with
# CTLL_KEEP_PROXIES_ON_EXIT=1, the deployment's default). Run it as root (Docker's log files are
# root's).
# With FILE...: those files instead (copies you shipped or backed up: JSON lines or Docker's
# json-file lines, optionally .gz); nothing else is touched.
#
# Options:
#   --hash HASH        the user's hash instead of their id (64 lowercase hex digits)
#   --env-file FILE    the deployment's settings, for CTLL_STACK_NAME [server/deploy/.env]
#   --restart          erase: stop and start the containers whose logs are edited
#   --dry-run          erase: count what would be deleted, change nothing
#
# Exit status: 0 done (access: lines found or not), 1 refused or failed, 2 bad arguments.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CTLL_TAG=data-request
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$ROOT/scripts/deploy/lib.sh"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
bad() { printf '%s: %s (try --help)\n' "$CTLL_TAG" "$*" >&2; exit 2; }

action="${1:-}"
case "$action" in
  -h|--help) usage; exit 0 ;;
  hash|access|erase) shift ;;
  "") bad "say what to do: hash, access or erase" ;;
  *) bad "unknown action '$action': hash, access or erase" ;;
esac

hash=""
env_file="$ROOT/server/deploy/.env"
restart=0
dry_run=0
positional=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --hash) [ $# -ge 2 ] || bad "--hash needs a value"; hash="$2"; shift 2 ;;
    --env-file) [ $# -ge 2 ] || bad "--env-file needs a value"; env_file="$2"; shift 2 ;;
    --restart) restart=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    --) shift; positional+=("$@"); break ;;
    -*) bad "unknown option $1" ;;
    *) positional+=("$1"); shift ;;
  esac
done
# The user is --hash, or else the first argument (their id); the other arguments are files.
if [ -z "$hash" ]; then
  [ ${#positional[@]} -gt 0 ] || bad "give the user id (the token's sub, e.g. 'auth0|65f...') or --hash HASH"
  hash="$(printf '%s' "${positional[0]}" | sha256sum | cut -c1-64)"
  positional=("${positional[@]:1}")
fi
files=("${positional[@]}")
[[ "$hash" =~ ^[0-9a-f]{64}$ ]] || bad "--hash '$hash' is not a user hash (64 lowercase hex digits)"
if [ "$action" = hash ]; then
  [ ${#files[@]} -eq 0 ] || bad "hash takes only the user id"
  echo "$hash"
  exit 0
fi
# What every line naming the user holds: the hash's first 12 hex digits (48 bits: a line of
# another user matches by chance with odds below 1 in 10^12).
needle="${hash:0:12}"
[ "$action" = erase ] || [ "$restart$dry_run" = 00 ] || bad "--restart and --dry-run belong to erase"

for f in "${files[@]}"; do [ -f "$f" ] || die "$f: no such file"; done

# Lines of FILE (gzip'd or not) that name the user.
matching() {
  if [[ "$1" == *.gz ]]; then gzip -dc -- "$1" | grep -F -- "$needle" || true; else grep -F -- "$needle" "$1" || true; fi
}
count_in() { matching "$1" | wc -l | tr -d ' '; }

# Rewrites FILE without the user's lines, in place (same inode, owner and mode).
strip_file() {
  local f="$1" tmp
  tmp="$(mktemp "${TMPDIR:-/tmp}/ctll-data-request.XXXXXX")"
  if [[ "$f" == *.gz ]]; then
    { gzip -dc -- "$f" | grep -v -F -- "$needle" || true; } | gzip -c > "$tmp"
  else
    { grep -v -F -- "$needle" "$f" || true; } > "$tmp"
  fi
  cat "$tmp" > "$f"
  rm -f "$tmp"
}

addresses() { { grep -o '"address":"[^"]*"' || true; } | sed 's/^"address":"//; s/"$//' | sort -u; }

if [ ${#files[@]} -gt 0 ]; then
  if [ "$action" = access ]; then
    found=0
    for f in "${files[@]}"; do
      while IFS= read -r line; do printf '%s: %s\n' "$f" "$line"; found=$((found + 1)); done < <(matching "$f")
    done
    say "$found line(s) name user $hash"
    for f in "${files[@]}"; do matching "$f"; done | addresses | sed 's/^/address: /'
  else
    total=0
    for f in "${files[@]}"; do
      n="$(count_in "$f")"
      total=$((total + n))
      if [ "$dry_run" = 1 ]; then say "$f: $n line(s) would be deleted"; else [ "$n" = 0 ] || strip_file "$f"; say "$f: $n line(s) deleted"; fi
    done
    say "$total line(s) of user $hash $([ "$dry_run" = 1 ] && echo 'would be deleted' || echo deleted)"
  fi
  exit 0
fi

# --- the stack's own containers -----------------------------------------------------------------
command -v docker >/dev/null || die "the docker CLI is not installed"
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (run as root on the stack's host)"
if [ -z "${CTLL_STACK_NAME:-}" ] && [ -f "$env_file" ]; then read_env_file "$env_file"; fi
stack="${CTLL_STACK_NAME:-cloudtolocalllm}"

container_of() { # ROLE -> the container id of this stack's service with that role (running or not)
  docker ps -aq --filter "label=cloudtolocalllm.stack=$stack" --filter "label=cloudtolocalllm.role=$1" | head -1
}
api="$(container_of api)"
filter="$(container_of docker-api-filter)"
[ -n "$api" ] || die "no api-backend container of stack '$stack' (CTLL_STACK_NAME; --env-file)"
services=("$api" ${filter:+"$filter"})
proxy="ctll-$stack-proxy-$hash"
network="ctll-$stack-net-$hash"
# A proxy that was a spare (CTLL_PROXY_SPARES) kept its network's name: the container says which it joined.
if joined="$(docker inspect --format '{{.HostConfig.NetworkMode}}' "$proxy" 2>/dev/null)" && [[ "$joined" =~ ^ctll-.*net-[0-9a-f]{64}$ ]]; then network="$joined"; fi
name_of() { docker inspect --format '{{.Name}}' "$1" | sed 's#^/##'; }
log_files_of() { # CONTAINER -> its json-file log and the rotated ones
  local log
  log="$(docker inspect --format '{{.LogPath}}' "$1")"
  for f in "$log" "$log".*; do [ -f "$f" ] && printf '%s\n' "$f"; done
  return 0
}

if [ "$action" = access ]; then
  found=0
  for c in "${services[@]}"; do
    name="$(name_of "$c")"
    while IFS= read -r line; do printf '%s: %s\n' "$name" "$line"; found=$((found + 1)); done < <(docker logs "$c" 2>&1 | grep -F -- "$needle" || true)
  done
  say "$found log line(s) name user $hash"
  for c in "${services[@]}"; do docker logs "$c" 2>&1 | grep -F -- "$needle" || true; done | addresses | sed 's/^/address: /'
  docker ps -a --filter "name=^/$proxy\$" --format 'proxy: {{.Names}} {{.Status}} (created {{.CreatedAt}})'
  docker network ls --filter "name=^$network\$" --format 'network: {{.Name}}'
  exit 0
fi

# erase
for c in "${services[@]}"; do
  driver="$(docker inspect --format '{{.HostConfig.LogConfig.Type}}' "$c")"
  [ "$driver" = json-file ] || die "$(name_of "$c") logs to '$driver', not json-file: erase its lines where that driver keeps them (docs/compliance.md)"
done
running=()
for c in "${services[@]}"; do
  [ "$(docker inspect --format '{{.State.Running}}' "$c")" = true ] && running+=("$c")
done
if [ ${#running[@]} -gt 0 ] && [ "$restart" = 0 ] && [ "$dry_run" = 0 ]; then
  die "$(for c in "${running[@]}"; do name_of "$c"; done | paste -sd, -) running: Docker appends to its log while it runs; rerun with --restart (stops it for a few seconds) or stop it yourself"
fi
if [ "$dry_run" = 1 ]; then
  for c in "${services[@]}"; do
    n=0
    while IFS= read -r f; do n=$((n + $(count_in "$f"))); done < <(log_files_of "$c")
    say "$(name_of "$c"): $n line(s) would be deleted"
  done
  docker ps -a --filter "name=^/$proxy\$" --format 'would remove the proxy {{.Names}}'
  docker network ls --filter "name=^$network\$" --format 'would remove the network {{.Name}}'
  exit 0
fi

# The api-backend first (it writes the audit lines), then the filter it depends on.
for c in "${running[@]}"; do say "stopping $(name_of "$c")"; docker stop --time 30 "$c" >/dev/null; done
restart_all() {
  local i
  for ((i = ${#running[@]} - 1; i >= 0; i--)); do say "starting $(name_of "${running[$i]}")"; docker start "${running[$i]}" >/dev/null; done
}
trap restart_all EXIT
# Its proxy, with its own log, and its network: gone while nothing can log their removal.
if docker inspect "$proxy" >/dev/null 2>&1; then docker rm -f "$proxy" >/dev/null && say "removed the proxy $proxy"; fi
if docker network inspect "$network" >/dev/null 2>&1; then docker network rm "$network" >/dev/null && say "removed the network $network"; fi
total=0
for c in "${services[@]}"; do
  n=0
  while IFS= read -r f; do
    k="$(count_in "$f")"
    [ "$k" = 0 ] || strip_file "$f"
    n=$((n + k))
  done < <(log_files_of "$c")
  total=$((total + n))
  say "$(name_of "$c"): $n line(s) deleted"
done
say "$total line(s) of user $hash deleted"
