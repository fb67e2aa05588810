#!/usr/bin/env bash
# certbot deploy hook: copies a new or renewed certificate into the stack's TLS directory and
# makes nginx load it (SIGHUP: new connections get the new certificate, streams in flight go on).
#
# certbot runs it with RENEWED_LINEAGE=/etc/letsencrypt/live/<name> after every successful
# issuance or renewal (`certbot renew`, from its systemd timer, uses the hook saved by
# deploy-multi-container.sh --ssl-setup). Environment:
#   RENEWED_LINEAGE   the certificate's directory (set by certbot)
#   CTLL_STATE_DIR    the stack's state directory (default /var/lib/cloudtolocalllm)
#   CTLL_STACK_NAME   the compose project (default cloudtolocalllm)
set -euo pipefail
CTLL_TAG=install-cert
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

lineage="${RENEWED_LINEAGE:?RENEWED_LINEAGE is not set (this script is the deploy hook of certbot)}"
state="${CTLL_STATE_DIR:-/var/lib/cloudtolocalllm}"
stack="${CTLL_STACK_NAME:-cloudtolocalllm}"
tls="$state/tls"
if [ ! -s "$lineage/fullchain.pem" ] || [ ! -s "$lineage/privkey.pem" ]; then die "$lineage has no fullchain.pem/privkey.pem"; fi

mkdir -p "$tls"
chmod 700 "$tls"
# Written next to the old files, then renamed: nginx never reads a half-written pair.
install -m 600 "$lineage/privkey.pem" "$tls/privkey.pem.new"
install -m 644 "$lineage/fullchain.pem" "$tls/fullchain.pem.new"
mv -f "$tls/privkey.pem.new" "$tls/privkey.pem"
mv -f "$tls/fullchain.pem.new" "$tls/fullchain.pem"
rm -f "$tls/self-signed"
say "installed $(openssl x509 -in "$tls/fullchain.pem" -noout -subject -enddate 2>/dev/null | tr '\n' ' ')"

for id in $(docker ps -q --filter "label=com.docker.compose.project=$stack" --filter "label=com.docker.compose.service=nginx-proxy"); do
  docker kill -s HUP "$id" >/dev/null
  say "nginx ($id) reloaded"
done
