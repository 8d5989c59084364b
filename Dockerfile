# The LogLine server: `serve` (HTTP API) and `worker` from one image.
#   docker build -t logline-server .
#   docker run -p 8080:8080 logline-server            # everything embedded
FROM rust:1.85-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p logline-server --locked

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 logline
COPY --from=build /src/target/release/logline-server /usr/local/bin/logline-server
USER logline
ENV LOGLINE_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["logline-server"]
CMD ["serve"]
