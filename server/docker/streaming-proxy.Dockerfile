# The per-user streaming proxy image for real deployments.
#
# The build context is the one scripts/build-proxy-image.sh prepares (it bundles
# server/src/proxy/cli.ts into app/proxy.mjs with esbuild and copies app/healthcheck.mjs):
#
#   scripts/build-proxy-image.sh --context /tmp/proxy-ctx
#   docker build -f server/docker/streaming-proxy.Dockerfile -t cloudtolocalllm/streaming-proxy /tmp/proxy-ctx
#
# or, where node:20-alpine can be pulled, in one step:
#
#   BASE=alpine scripts/build-proxy-image.sh
#
# The offline image (scripts/proxy-image/scratch.Dockerfile) has the same layout: /app/proxy.mjs,
# /app/healthcheck.mjs, user 1001, port 8080, the same ENV, HEALTHCHECK and CMD.
FROM node:20-alpine

# A fixed non-root uid/gid: the runtime starts containers with --user 1001:1001 and a read-only
# root filesystem, so the numbers must match and nothing may need to write under /app.
RUN addgroup -S -g 1001 proxyuser \
 && adduser -S -D -H -u 1001 -G proxyuser -h /app -s /sbin/nologin proxyuser

WORKDIR /app
# Owned by root and not writable by proxyuser: the proxy never modifies its own code.
COPY app/proxy.mjs app/healthcheck.mjs /app/

USER 1001
EXPOSE 8080
ENV PROXY_HOST=0.0.0.0 PROXY_PORT=8080 NODE_ENV=production

# A small node script instead of curl/wget: the offline scratch image has nothing but node.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "/app/healthcheck.mjs"]

CMD ["node", "/app/proxy.mjs"]
