# HAProxy for deploy/compose.replicas.yaml, with deploy/haproxy.cfg. The base is a build arg, like the serve image's:
# Debian's own HAProxy package, so a machine that reaches only a Debian mirror builds it from an mmdebstrap base.
ARG BASE_IMAGE=debian:bookworm-slim
# checkov:skip=CKV_DOCKER_7: the base is the BASE_IMAGE build arg, whose default above is a pinned tag
FROM ${BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends haproxy=2.6.* && rm -rf /var/lib/apt/lists/*
COPY deploy/haproxy.cfg /usr/local/etc/haproxy/haproxy.cfg
USER 10002:10002
EXPOSE 8080
ENV LISTEN=:8080 REPLICA1=serve1:8000 REPLICA2=serve2:8000 REPLICA3=serve3:8000
HEALTHCHECK --interval=10s --timeout=3s CMD ["haproxy", "-c", "-q", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
CMD ["haproxy", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
