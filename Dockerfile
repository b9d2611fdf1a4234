# syntax=docker/dockerfile:1
#
# procwarden as a container: one agent per pod or host (see contrib/kubernetes/ and the
# README's "Running a fleet").
#
#   docker build -t procwarden .
#   docker run --rm -p 7717:7717 -v "$PWD/token:/run/secrets/procwarden-token:ro" procwarden
#
# The commands an agent runs see the runtime image's filesystem: build on the image that has
# your tools (--build-arg RUNTIME_IMAGE=...), as long as it has /bin/sh and useradd.

ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin procwarden

FROM ${RUNTIME_IMAGE}
# tini as PID 1: forwards SIGTERM to procwarden (which ends every process group it started)
# and reaps whatever else is orphaned in the container.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --user-group --shell /bin/sh procwarden
COPY --from=build /src/target/release/procwarden /usr/local/bin/procwarden
USER 10001:10001
WORKDIR /home/procwarden
EXPOSE 7717
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/procwarden"]
# A non-loopback address needs the token: mount it as a secret at this path.
CMD ["serve", "--listen", "0.0.0.0:7717", "--token-file", "/run/secrets/procwarden-token", "--log-format", "json"]
