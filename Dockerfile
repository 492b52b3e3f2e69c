# syntax=docker/dockerfile:1
#
# docker build -t tokengate .
# docker run --rm -p 8080:8080 -e DATABASE_URL=postgres://... \
#            -e TOKENGATE_HASH_KEY="$(docker run --rm tokengate gen-key)" tokengate
#
# Builds offline from the committed .sqlx/ query data: no database needed.

############################ build ############################
FROM rust:1-bookworm AS builder
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0
WORKDIR /app

# Dependencies first, in their own layer: rebuilt only when Cargo.toml or
# Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && mkdir -p tests/api && touch tests/api/main.rs \
    && cargo build --release --locked \
    && rm -rf src

# The crate itself.
COPY src ./src
COPY migrations ./migrations
COPY .sqlx ./.sqlx
# COPY keeps the files' old mtimes: make sure cargo rebuilds over the dummy.
RUN find src -name '*.rs' -exec touch {} + \
    && cargo build --release --locked \
    && cp target/release/tokengate /usr/local/bin/tokengate

############################ runtime ############################
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 tokengate \
    && useradd --system --uid 10001 --gid tokengate --no-create-home \
               --home-dir /nonexistent --shell /usr/sbin/nologin tokengate
COPY --from=builder /usr/local/bin/tokengate /usr/local/bin/tokengate

USER 10001:10001
ENV TOKENGATE_LISTEN=0.0.0.0:8080 \
    TOKENGATE_LOG_FORMAT=json
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/health/ready || exit 1

ENTRYPOINT ["tokengate"]
CMD ["serve"]
