# syntax=docker/dockerfile:1
#
# tokengate's image: a release build on Debian 12, run as an unprivileged user.
#
#   docker build -t tokengate:local .
#   docker run --rm tokengate:local gen-key        # a hash key: make it once and keep it
#
# docker-compose.yml runs it with PostgreSQL (docs/operations.md#docker). It builds offline
# from the committed .sqlx/ query data: no database is needed to build.
#
# The bases are pinned by tag. To pin them by digest as well, look the digests up
# (`docker buildx imagetools inspect rust:1.95.0-bookworm`) and write them as
# `rust:1.95.0-bookworm@sha256:…`. The runtime base is Debian 12 (bookworm), like the builder,
# so the binary finds the same glibc.

############################ build ############################
FROM rust:1.95.0-bookworm AS builder
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0
WORKDIR /app

# Dependencies first, in their own layer: rebuilt only when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src tests/api \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs tests/api/main.rs \
    && cargo build --release --locked \
    && rm -rf src

# The crate itself.
COPY src ./src
COPY migrations ./migrations
COPY .sqlx ./.sqlx
# COPY keeps the files' old mtimes: make sure cargo rebuilds over the dummy.
RUN find src -type f -exec touch {} + \
    && cargo build --release --locked \
    && cp target/release/tokengate /usr/local/bin/tokengate

############################ runtime ############################
FROM debian:12.11-slim
# ca-certificates: TLS to a managed PostgreSQL; curl: the health check below.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 tokengate \
    && useradd --system --uid 10001 --gid tokengate --no-create-home \
               --home-dir /nonexistent --shell /usr/sbin/nologin tokengate
COPY --from=builder /usr/local/bin/tokengate /usr/local/bin/tokengate

LABEL org.opencontainers.image.title="tokengate" \
      org.opencontainers.image.description="Issues, manages and verifies API access tokens" \
      org.opencontainers.image.licenses="MIT"

USER 10001:10001
# Inside the container it must listen on every interface to be reachable at all; what the
# host publishes is decided by `docker run -p` / docker-compose.yml (127.0.0.1 by default).
ENV TOKENGATE_LISTEN=0.0.0.0:8080 \
    TOKENGATE_LOG_FORMAT=json
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/health/ready"]

ENTRYPOINT ["tokengate"]
CMD ["serve"]
