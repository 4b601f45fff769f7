# syntax=docker/dockerfile:1
# Multi-stage build: a release binary on a distroless, non-root base image.
# (Not built by this repository's CI: its machines have no container engine.)
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY sim ./sim
COPY benches ./benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin confluence-operator \
    && cp target/release/confluence-operator /confluence-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /confluence-operator /usr/local/bin/confluence-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/confluence-operator"]
