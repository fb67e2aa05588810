# shellcheck shell=bash disable=SC2034
# Shared helpers of the deployment scripts (sourced, not run). Bash 4+.
#
#   say / warn / die         messages prefixed with the script's name ($CTLL_TAG)
#   run CMD...               runs CMD, or only prints it when DRY_RUN=1
#   copy_with_libs BIN DEST  copies an ELF binary and every library `ldd` lists (plus the loader)
#                            into DEST at the same paths (for FROM scratch images)
#   read_env_file FILE       KEY=VALUE lines into the environment (no shell expansion, like
#                            docker-compose reads .env)
#   compose_cmd              prints the compose command: `docker-compose` (v1) or `docker compose`

CTLL_TAG="${CTLL_TAG:-deploy}"
DRY_RUN="${DRY_RUN:-0}"

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
  _c_bold=$'\e[1m' _c_red=$'\e[31m' _c_yellow=$'\e[33m' _c_dim=$'\e[2m' _c_off=$'\e[0m'
else
  _c_bold='' _c_red='' _c_yellow='' _c_dim='' _c_off=''
fi

say() { printf '%s%s:%s %s\n' "$_c_bold" "$CTLL_TAG" "$_c_off" "$*"; }
warn() { printf '%s%s: warning:%s %s\n' "$_c_yellow" "$CTLL_TAG" "$_c_off" "$*" >&2; }
die() { printf '%s%s: error:%s %s\n' "$_c_red" "$CTLL_TAG" "$_c_off" "$*" >&2; exit 1; }

# Prints the command (quoted so it can be pasted) and runs it unless DRY_RUN=1.
run() {
  local quoted
  quoted="$(printf '%q ' "$@")"
  if [ "$DRY_RUN" = 1 ]; then
    printf '%s  [dry-run] %s%s\n' "$_c_dim" "${quoted% }" "$_c_off"
    return 0
  fi
  printf '%s  + %s%s\n' "$_c_dim" "${quoted% }" "$_c_off"
  "$@"
}

# copy_with_libs /usr/sbin/nginx "$ctx/runtime": the binary at its own path, then each library.
# -L: on merged-/usr hosts /lib is a symlink; in the image these are plain files at those paths.
copy_with_libs() {
  local bin="$1" dest="$2" real lib
  real="$(readlink -f "$bin")"
  [ -x "$real" ] || die "$bin not found"
  mkdir -p "$dest$(dirname "$bin")"
  cp -L "$real" "$dest$bin"
  while read -r lib; do
    [ -n "$lib" ] || continue
    mkdir -p "$dest$(dirname "$lib")"
    [ -e "$dest$lib" ] || cp -L "$lib" "$dest$lib"
  done < <(ldd "$real" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
}

# The libraries of every file given (for hashing inputs).
libs_of() {
  ldd "$@" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u
}

read_env_file() {
  local file="$1" line key value
  [ -f "$file" ] || die "settings file $file not found (copy server/deploy/.env.example to it and edit it)"
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line%$'\r'}"
    [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
    if [[ ! "$line" =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]]; then
      die "$file: cannot read the line '${line:0:60}' (expected KEY=VALUE)"
    fi
    key="${BASH_REMATCH[1]}"
    value="${BASH_REMATCH[2]}"
    # Surrounding quotes are removed, as docker-compose does; nothing is expanded.
    if [[ "$value" =~ ^\"(.*)\"$ ]] || [[ "$value" =~ ^\'(.*)\'$ ]]; then value="${BASH_REMATCH[1]}"; fi
    # The environment wins over the file (as with docker-compose), so a caller can override one value.
    if [ -z "${!key+set}" ]; then export "$key=$value"; fi
  done < "$file"
}

compose_cmd() {
  if command -v docker-compose >/dev/null 2>&1; then
    echo docker-compose
  elif docker compose version >/dev/null 2>&1; then
    echo 'docker compose'
  else
    return 1
  fi
}
