# The cloud server (api-backend), the Docker API filter and the isolation firewall's keeper,
# offline: FROM scratch with the build host's node, iptables (for the keeper: the same backend as
# the host's, nft or legacy) and their libraries.
# No registry needed. Built by scripts/deploy/build-images.sh, which assembles the context:
#   runtime/   /usr/bin/node, /usr/sbin/iptables + ip6tables + their xtables modules, libraries,
#              the dynamic loader, /etc/passwd, /etc/group, /etc/protocols
#   app/       server.mjs (server/src/main.ts bundled by esbuild), docker-api-filter.mjs,
#              isolation-firewall.mjs (server/src/firewall/cli.ts), healthcheck.mjs, web/ (the
#              built web client, when there is one)
#   run/       ctll-docker/ (the mount point of the filter's socket volume, owned by 65534)
# Twin: api-backend.alpine.Dockerfile (FROM node:20-alpine, same layout), for hosts with a registry.
FROM scratch

# The ~110 MB runtime layer stays cached when only the application changes.
COPY runtime/ /
COPY --chown=65534:65534 run/ /run/
COPY app/ /app/

WORKDIR /app
EXPOSE 8080
# HOST 127.0.0.1: the service runs in the host's network namespace (it must reach every proxy on
# its per-user bridge); nginx, on the same host, is the only way in.
ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin NODE_ENV=production HOST=127.0.0.1 PORT=8080 \
    CTLL_WEB_ROOT=/app/web DOCKER_HOST=unix:///run/ctll-docker/docker.sock \
    XTABLES_LOCKFILE=/tmp/xtables.lock

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "/app/healthcheck.mjs"]

CMD ["node", "/app/server.mjs"]
