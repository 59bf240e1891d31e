# syntax=docker/dockerfile:1
# mcp-rproxy container: a build stage compiles one executable with the production permissions baked in
# (scripts/permissions.ts, COMPILE_PERMISSIONS); the runtime stage holds that file and nothing else.
#
#   docker build -t mcp-rproxy .
#   docker run --rm -p 8080:8080 -e MCP_RPROXY_JWT_SECRET="$SECRET" mcp-rproxy
#   (serve needs a token source: that variable, or a mounted --tokens-file)
#
# `connect` starts the local MCP server inside the container, so its program must be in the image:
#   docker build --build-arg RUNTIME_IMAGE=node:22-bookworm-slim -t mcp-rproxy:node .
# gives a runtime with node/npx for servers such as `npx -y @modelcontextprotocol/server-everything`.

ARG DENO_VERSION=2.9.6
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM denoland/deno:${DENO_VERSION} AS build
WORKDIR /src
# Dependencies first, so that source edits reuse this layer.
COPY deno.json deno.lock ./
RUN deno install --frozen
COPY main.ts ./
COPY lib/ lib/
COPY scripts/ scripts/
# REQUIRE_COMPILE=1: a build that cannot fetch the Deno runtime fails instead of shipping nothing.
RUN REQUIRE_COMPILE=1 deno task compile --target host \
  && cp "dist/mcp-rproxy-$(deno eval --quiet 'console.log(Deno.build.target)')" /mcp-rproxy \
  && mkdir -p /home-app /state

FROM ${RUNTIME_IMAGE} AS runtime
COPY --from=build /mcp-rproxy /usr/local/bin/mcp-rproxy
COPY --from=build --chown=65532:65532 /home-app /home/app
# serve's state (sessions that survive a restart; docs/serve.md "State and restarts"): owned by the
# runtime user, mode 0700, a volume so that it outlives the container. The compiled binary may write
# here and nowhere else (scripts/permissions.ts, COMPILE_PERMISSIONS).
COPY --from=build --chown=65532:65532 --chmod=0700 /state /var/lib/mcp-rproxy
VOLUME ["/var/lib/mcp-rproxy"]
# Numeric, so that it works on any base image; 65532 is distroless's "nonroot".
USER 65532:65532
ENV HOME=/home/app
ENV MCP_RPROXY_STATE_DIR=/var/lib/mcp-rproxy
# glibc hands freed buffers of 64 KiB and more back to the OS at once (mmap), instead of keeping them for
# reuse: after a burst of large messages RSS returns to its baseline (docs/security.md, "Memory").
ENV MALLOC_MMAP_THRESHOLD_=65536
WORKDIR /home/app
EXPOSE 8080 9090
# The binary itself is PID 1: it installs SIGTERM/SIGINT listeners (Deno ignores SIGTERM as PID 1
# without one), stops the local server's process group and exits 0 (tests/pid1_test.ts).
STOPSIGNAL SIGTERM
# distroless has no shell or curl: the binary probes its own health listener. Needs --health-listen
# 0.0.0.0:9090 (or 127.0.0.1:9090) on the command; otherwise the container reports unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["/usr/local/bin/mcp-rproxy", "healthcheck", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["/usr/local/bin/mcp-rproxy"]
CMD ["serve", "--listen", "0.0.0.0:8080", "--health-listen", "0.0.0.0:9090"]
