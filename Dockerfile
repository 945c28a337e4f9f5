# civicgate on debian:bookworm-slim: build stage with the -dev packages, run
# stage with only the runtime libraries. Intents are mounted as a volume.
FROM debian:bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libwebsockets-dev libcjson-dev libhiredis-dev \
      libcurl4-openssl-dev libuv1-dev libssl-dev libsodium-dev libutf8proc-dev \
      libstemmer-dev liblinear-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY include include
COPY engine engine
COPY connectors connectors
COPY gateway gateway
COPY tests/unit tests/unit
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j"$(nproc)" --target civicgate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      libwebsockets17 libcjson1 libhiredis0.14 libcurl4 libuv1 libssl3 libsodium23 \
      libutf8proc2 libstemmer0d liblinear4 ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /srv/civicgate civicgate
WORKDIR /srv/civicgate
COPY --from=build /src/build/civicgate /usr/local/bin/civicgate
COPY gateway/www /srv/civicgate/www
COPY config/docker.json /etc/civicgate/civicgate.json
USER civicgate
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=2s CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
ENTRYPOINT ["civicgate", "serve", "--config", "/etc/civicgate/civicgate.json"]
