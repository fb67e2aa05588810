# Offline twin of server/docker/streaming-proxy.Dockerfile: no registry is reachable here, so the
# image is FROM scratch with the host's /usr/bin/node and the shared libraries `ldd` lists for it.
# Same layout, user, port, environment, health check and command as the node:20-alpine image.
# Built only by scripts/build-proxy-image.sh, which assembles the context:
#   runtime/  /usr/bin/node, its libraries, the dynamic loader, /etc/passwd and /etc/group
#   app/      proxy.mjs (the esbuild bundle) and healthcheck.mjs
FROM scratch

# Two layers: the ~100 MB runtime layer stays cached when only the proxy bundle changes.
COPY runtime/ /
COPY app/ /app/

WORKDIR /app
USER 1001:1001
EXPOSE 8080
ENV PATH=/usr/local/bin:/usr/bin:/bin PROXY_HOST=0.0.0.0 PROXY_PORT=8080 NODE_ENV=production

HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "/app/healthcheck.mjs"]

CMD ["node", "/app/proxy.mjs"]
