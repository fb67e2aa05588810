# The edge (nginx-proxy) on nginx:1.27-alpine, for hosts that can pull from a registry. The
# configuration is mounted at /etc/nginx (rendered by scripts/deploy/render-nginx-conf.sh), as for
# the offline twin nginx.scratch.Dockerfile. Alpine has busybox at /bin/busybox and a user nginx
# (101), so the health check and `user nginx nginx;` work unchanged.
FROM nginx:1.27-alpine

EXPOSE 80 443
STOPSIGNAL SIGQUIT

HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8088/nginx-health"]

CMD ["nginx", "-c", "/etc/nginx/nginx.conf", "-g", "daemon off;"]
