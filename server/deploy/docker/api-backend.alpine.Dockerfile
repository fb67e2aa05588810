# The cloud server (api-backend) and the Docker API filter on node:20-alpine, for hosts that can
# pull from a registry. Same layout as api-backend.scratch.Dockerfile (the offline twin); the build
# context is the one scripts/deploy/build-images.sh --base alpine assembles (app/ and run/).
#
# iptables: the isolation-firewall service (same image) installs the proxies' isolation rules in the host's network namespace, so
# the iptables in the image must use the same backend as the host's Docker. Alpine's `iptables` is
# nft-based (3.19+), like Debian 12 and Ubuntu 22.04+; on a host on iptables-legacy use the
# scratch image (it copies the host's own iptables) or set CTLL_FIREWALL=off and install the rules
# on the host (docs/operations.md).
FROM node:20-alpine

RUN apk add --no-cache iptables ip6tables \
 && mkdir -p /run/ctll-docker && chown 65534:65534 /run/ctll-docker

COPY app/ /app/

WORKDIR /app
EXPOSE 8080
ENV NODE_ENV=production HOST=127.0.0.1 PORT=8080 \
    CTLL_WEB_ROOT=/app/web DOCKER_HOST=unix:///run/ctll-docker/docker.sock \
    XTABLES_LOCKFILE=/tmp/xtables.lock

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "/app/healthcheck.mjs"]

CMD ["node", "/app/server.mjs"]
