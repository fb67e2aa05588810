# The edge (nginx-proxy), offline: FROM scratch with the build host's nginx (Debian's 1.22: HTTP/2,
# TLS 1.3, stub_status built in), its libraries, and a static busybox for the health check only.
# Built by scripts/deploy/build-images.sh, which assembles the context:
#   runtime/   /usr/sbin/nginx, its libraries, the dynamic loader, /bin/busybox,
#              /etc/passwd + /etc/group (user nginx, 101)
# The configuration is not in the image: scripts/deploy/render-nginx-conf.sh renders
# server/deploy/nginx/ into $CTLL_STATE_DIR/nginx, mounted read-only at /etc/nginx.
# Twin: nginx.alpine.Dockerfile (FROM nginx:1.27-alpine), for hosts with a registry.
FROM scratch

COPY runtime/ /

ENV PATH=/usr/sbin:/usr/bin:/bin
EXPOSE 80 443
# SIGQUIT: finish the requests in flight (streams included, up to stop_grace_period) then exit.
STOPSIGNAL SIGQUIT

HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8088/nginx-health"]

CMD ["nginx", "-c", "/etc/nginx/nginx.conf", "-g", "daemon off;"]
