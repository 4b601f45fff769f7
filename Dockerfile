# syntax=docker/dockerfile:1
# Multi-stage build: a static-ish release binary on a distroless, non-root base.
# (Not built in this repository's CI: its machines have no container engine.)
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits reuse the cached layer.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src/bin benches && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && echo 'fn main() {}' > src/bin/crdgen.rs && echo 'fn main() {}' > src/bin/confluence-sim.rs \
    && (cargo build --release --locked --bin confluence-operator || true)
COPY src ./src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin confluence-operator \
    && cp target/release/confluence-operator /confluence-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /confluence-operator /usr/local/bin/confluence-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/confluence-operator"]
