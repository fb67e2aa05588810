#!/usr/bin/env bash
# Makes the per-stack CA of the api-backends' hop and one certificate per node, with openssl:
#   scripts/deploy/make-cluster-ca.sh DIR [NODE_NAME...]
# DIR/ca.pem, DIR/ca-key.pem (keep offline: it signs new nodes), DIR/<node>.pem, DIR/<node>-key.pem.
# Without node names it makes one "node" certificate: on a Swarm every api-backend task may share
# it (the secret is the same for every task of the service); per-node ones let you revoke one.
# Existing files are kept, so adding a node signs only its certificate.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 DIR [NODE_NAME...]" >&2
  exit 2
fi
dir=$1
shift
nodes=("$@")
[ ${#nodes[@]} -gt 0 ] || nodes=(node)
command -v openssl >/dev/null || { echo "$0: openssl is needed" >&2; exit 1; }
mkdir -p "$dir"
umask 077
if [ ! -f "$dir/ca.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=CloudToLocalLLM cluster CA" -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
for node in "${nodes[@]}"; do
  case $node in *[!A-Za-z0-9._-]*|'') echo "$0: node name \"$node\" may hold only letters, digits, . _ -" >&2; exit 2 ;; esac
  [ -f "$dir/$node.pem" ] && continue
  ext=$(mktemp)
  trap 'rm -f "$ext" "$dir/$node.csr"' EXIT
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n' >"$ext"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$node" \
    -keyout "$dir/$node-key.pem" -out "$dir/$node.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$node.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" -CAcreateserial \
    -days 825 -extfile "$ext" -out "$dir/$node.pem" 2>/dev/null
  rm -f "$ext" "$dir/$node.csr"
  trap - EXIT
done
echo "cluster CA and certificates in $dir: ${nodes[*]}"
