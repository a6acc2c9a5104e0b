# syntax=docker/dockerfile:1
#
# distill-guard as a container: a build stage with the Rust toolchain, then a
# small runtime image (distroless: glibc, CA certificates, no shell) running as
# a non-root user.
#
#   docker build -t distill-guard .
#   docker run --rm -p 8080:8080 -p 9091:9091 \
#     -v "$PWD/guard.toml:/etc/distill-guard/guard.toml:ro" \
#     -e DISTILL_GUARD_SECRET="$(openssl rand -hex 32)" \
#     distill-guard serve --config /etc/distill-guard/guard.toml \
#       --listen 0.0.0.0:8080 --metrics-listen 0.0.0.0:9091 \
#       --upstream https://models.internal.example

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target caches survive between builds (BuildKit); the binary
# is copied out of the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin distill-guard \
    && install -D -m 0755 target/release/distill-guard /out/distill-guard

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /out/distill-guard /usr/local/bin/distill-guard
# 65532 is distroless' `nonroot`; nothing in the image needs root.
USER 65532:65532
# The API, the admin listener, the metrics-only listener.
EXPOSE 8080 9090 9091
ENTRYPOINT ["/usr/local/bin/distill-guard"]
# Without arguments: the built-in demo model on every interface, for a first try.
CMD ["serve", "--listen", "0.0.0.0:8080"]
