# shellcheck shell=bash disable=SC2154
# The Swarm half of deploy-multi-container.sh (sourced by it, after its settings, certificate and
# nginx steps): `--swarm` deploys server/deploy/docker-stack.yml with `docker stack deploy` to the
# swarm this engine manages, `--swarm --down` removes it (docs/scaling.md).
#
# Uses from the caller: STACK, STATE, TLS, PORT, DRY_RUN, METRICS_TOKEN, env_file, wait_healthy,
# and lib.sh's say / warn / die / run.

SWARM_STACK_FILE="$ROOT/server/deploy/docker-stack.yml"
SWARM_SERVICES=(isolation-firewall docker-api-filter api-backend nginx-proxy)

# "active true" on a manager; anything else is refused with what to do.
swarm_require_manager() {
  local state
  state="$(docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}' 2>/dev/null || echo 'unknown false')"
  case "$state" in
    "active true") ;;
    "active false") die "this engine is a swarm worker, not a manager: run --swarm on a manager (docker node ls there lists the managers)" ;;
    *) die "this engine is not part of a swarm (Swarm: ${state%% *}): docker swarm init --advertise-addr ADDRESS on the first node, docker swarm join on the others (docs/scaling.md)" ;;
  esac
}

# The first 12 hex digits of the SHA-256 of the given files: configs and secrets are immutable,
# so their names carry their content's hash and a change is a new name (and a rolling update).
swarm_hash() { cat "$@" | sha256sum | cut -c1-12; }

# Every ready node's address with the peer port, comma separated and sorted (the same list for
# every task of the global api-backend service; each finds itself in it by its own addresses).
swarm_members() {
  local port="$1" id state addr manager_addr members=()
  while read -r id; do
    read -r state addr manager_addr < <(docker node inspect -f '{{.Status.State}} {{.Status.Addr}} {{if .ManagerStatus}}{{.ManagerStatus.Addr}}{{end}}' "$id")
    [ "$state" = ready ] || continue
    # A manager may report 0.0.0.0 as its address; its advertised manager address is the real one.
    if [ "$addr" = 0.0.0.0 ] && [ -n "$manager_addr" ]; then addr="${manager_addr%:*}"; fi
    members+=("$addr:$port")
  done < <(docker node ls -q)
  [ ${#members[@]} -gt 0 ] || die "the swarm lists no ready node (docker node ls)"
  printf '%s\n' "${members[@]}" | sort | paste -sd, -
}

swarm_status() {
  swarm_require_manager
  docker stack services "$STACK" || true
  docker stack ps --no-trunc --format '{{.Node}} {{.Name}} {{.CurrentState}} {{.Error}}' "$STACK" || true
}

swarm_down() {
  swarm_require_manager
  if ! docker stack ls --format '{{.Name}}' | grep -qx "$STACK"; then
    say "stack $STACK is not deployed on this swarm"
    return 0
  fi
  step "removing the proxies of stack $STACK on every node"
  # Each node's api-backend stops its own proxies when it stops with CTLL_KEEP_PROXIES_ON_EXIT=0
  # (the manager cannot reach the other nodes' engines): one update of every node at once (the
  # stack goes anyway), then the removal.
  run docker service update --quiet --detach=false --update-parallelism 0 --update-delay 0s --update-monitor 1s \
    --update-failure-action continue --env-add CTLL_KEEP_PROXIES_ON_EXIT=0 "${STACK}_api-backend" >/dev/null ||
    warn "the api-backends did not all restart to stop their proxies: remove a node's leftovers there with docker rm -f \$(docker ps -aq --filter label=cloudtolocalllm.stack=$STACK)"
  step "removing stack $STACK"
  run docker stack rm "$STACK"
  [ "$DRY_RUN" = 1 ] && return 0
  local deadline=$(( $(date +%s) + 120 ))
  while [ -n "$(docker service ls -q --filter "label=com.docker.stack.namespace=$STACK")" ] ||
        [ -n "$(docker network ls -q --filter "label=com.docker.stack.namespace=$STACK")" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || die "stack $STACK's services or networks are still there after 120 s (docker stack ps $STACK)"
    sleep 1
  done
  say "stack $STACK is down (its configs and secrets with it; volumes stay on each node: docker volume ls --filter label=com.docker.stack.namespace=$STACK)"
}

# The per-stack CA and the certificate every api-backend task shares: refused early when missing.
swarm_check_ca() {
  SWARM_CA_DIR="${CTLL_CLUSTER_CA_DIR:-$STATE/cluster-ca}"
  local missing=() f
  [[ "$SWARM_CA_DIR" = /* ]] || die "CTLL_CLUSTER_CA_DIR '$SWARM_CA_DIR' must be an absolute path"
  for f in ca.pem node.pem node-key.pem; do [ -s "$SWARM_CA_DIR/$f" ] || missing+=("$f"); done
  [ ${#missing[@]} -eq 0 ] || die "the cluster CA is missing in $SWARM_CA_DIR (${missing[*]}): make it with scripts/deploy/make-cluster-ca.sh $SWARM_CA_DIR (one certificate, node, shared by every api-backend task), or set CTLL_CLUSTER_CA_DIR"
  openssl verify -CAfile "$SWARM_CA_DIR/ca.pem" "$SWARM_CA_DIR/node.pem" >/dev/null 2>&1 || die "$SWARM_CA_DIR/node.pem is not signed by $SWARM_CA_DIR/ca.pem"
  if [ -e "$SWARM_CA_DIR/ca-key.pem" ]; then warn "$SWARM_CA_DIR/ca-key.pem is on this machine: it signs new peers; keep it offline once the node certificates are made"; fi
  [[ "${CTLL_CLUSTER_PORT:-8443}" =~ ^[0-9]+$ ]] || die "CTLL_CLUSTER_PORT '${CTLL_CLUSTER_PORT:-}' must be a port number"
}

swarm_up() {
  local ca_dir="$SWARM_CA_DIR" port="${CTLL_CLUSTER_PORT:-8443}"
  step "stack $STACK on the swarm ($(docker node ls -q | wc -l) node(s))"
  local members
  members="$(swarm_members "$port")"
  say "api-backend members (every ready node, port $port): $members"
  [ -S "${DOCKER_SOCKET:-/var/run/docker.sock}" ] || [[ "${DOCKER_SOCKET:-}" == *'{{'* ]] ||
    warn "DOCKER_SOCKET ${DOCKER_SOCKET:-} is not a socket on this node; it must be one on every node"
  for image in "$API_IMAGE" "$NGINX_IMAGE" "$PROXY_IMAGE"; do
    docker image inspect "$image" >/dev/null 2>&1 || die "missing image $image on this node; each node needs it (build with --build, or docker save | docker load on each node)"
  done
  say "images: $API_IMAGE, $NGINX_IMAGE, $PROXY_IMAGE (each node uses its own copy: load them on every node)"

  # The metrics token as a secret's file, only readable here; the stack reads it at deploy time.
  local secrets_dir="$STATE/swarm-secrets"
  run mkdir -p "$secrets_dir"
  run chmod 700 "$secrets_dir"
  if [ "$DRY_RUN" = 0 ]; then (umask 077; printf '%s' "$METRICS_TOKEN" > "$secrets_dir/metrics-token"); fi

  export CTLL_CLUSTER_MEMBERS="$members" CTLL_CLUSTER_PORT="$port" CTLL_CLUSTER_CA_DIR="$ca_dir"
  export CTLL_NGINX_DIR="$STATE/nginx" CTLL_TLS_DIR="$TLS" CTLL_METRICS_TOKEN_FILE="$secrets_dir/metrics-token"
  export CTLL_API_IMAGE="$API_IMAGE" CTLL_NGINX_IMAGE="$NGINX_IMAGE" CTLL_PROXY_IMAGE="$PROXY_IMAGE"
  CTLL_CLUSTER_HASH="$(swarm_hash "$ca_dir/ca.pem" "$ca_dir/node.pem" "$ca_dir/node-key.pem")"
  CTLL_TLS_HASH="$(swarm_hash "$TLS/fullchain.pem" "$TLS/privkey.pem" 2>/dev/null || echo dry-run)"
  CTLL_NGINX_HASH="$( (cd "$STATE/nginx" 2>/dev/null || exit 0; find . -type f | sort | xargs cat) | sha256sum | cut -c1-12)"
  CTLL_METRICS_HASH="$(printf '%s' "${METRICS_TOKEN:-}" | sha256sum | cut -c1-12)"
  export CTLL_CLUSTER_HASH CTLL_TLS_HASH CTLL_NGINX_HASH CTLL_METRICS_HASH

  run docker stack deploy --prune --resolve-image never -c "$SWARM_STACK_FILE" "$STACK"
  if [ "$DRY_RUN" = 1 ]; then
    say "[dry-run] would wait for ${SWARM_SERVICES[*]} to run on every node"
    return 0
  fi
  [ "$wait_healthy" = 1 ] || return 0
  swarm_wait_running || die "stack $STACK did not run on every node within ${CTLL_DEPLOY_WAIT_SECONDS:-300} s (docker stack ps $STACK; docs/operations.md, \"Common failures\")"
  say "all services running on every node"
  swarm_prune_objects
}

# Every service with as many running (and, where there is a health check, healthy) tasks as
# there are ready nodes. Swarm starts a task's successor only after its health check passes.
swarm_wait_running() {
  local deadline=$(( $(date +%s) + ${CTLL_DEPLOY_WAIT_SECONDS:-300} )) service want have all
  while :; do
    want="$(docker node ls --format '{{.Status}}' | grep -c '^Ready$')"
    all=1
    for service in "${SWARM_SERVICES[@]}"; do
      have="$(docker service ps --filter desired-state=running --format '{{.CurrentState}}' "${STACK}_$service" 2>/dev/null | grep -c '^Running' || true)"
      [ "$have" -ge "$want" ] || all=0
    done
    [ "$all" = 1 ] && return 0
    if [ "$(date +%s)" -ge "$deadline" ]; then
      docker stack ps --no-trunc --format '{{.Node}} {{.Name}} {{.CurrentState}} {{.Error}}' "$STACK" >&2 || true
      return 1
    fi
    sleep 2
  done
}

# Configs and secrets of earlier deployments (other content hashes) that no service uses now.
swarm_prune_objects() {
  local kind name
  for kind in config secret; do
    while read -r name; do
      docker "$kind" rm "$name" >/dev/null 2>&1 && say "removed the old $kind $name"
    done < <(docker "$kind" ls --format '{{.Name}}' --filter "label=com.docker.stack.namespace=$STACK")
  done
  return 0
}
