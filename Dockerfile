# Multi-stage build: compile in the Rust image, run in a slim Debian with a non-root user.
# Only a C compiler is needed at build time (bundled SQLite and QuickJS, aws-lc for TLS).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY schemas ./schemas
RUN cargo build --release --locked --bin functiond \
 && strip target/release/functiond

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin functiond \
 && mkdir -p /data /functions.d \
 && chown functiond:functiond /data
COPY --from=build /src/target/release/functiond /usr/local/bin/functiond
COPY functions.d /functions.d
COPY schemas /schemas

ENV FUNCTIOND_LISTEN=0.0.0.0:8080 \
    FUNCTIOND_FUNCTIONS_DIR=/functions.d \
    FUNCTIOND_DATABASE_URL=sqlite:///data/app.db \
    FUNCTIOND_STATE_URL=sqlite:///data/functiond.db \
    FUNCTIOND_EXPORTS_DIR=/data/exports \
    FUNCTIOND_EVENTS_SCHEMAS_DIR=/schemas/events \
    FUNCTIOND_LOG_FORMAT=json

USER functiond
WORKDIR /data
VOLUME ["/data", "/functions.d"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["functiond", "healthcheck"]
ENTRYPOINT ["functiond"]
CMD ["serve"]
