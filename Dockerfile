# Legate container image: legate-proxy and legate-controller in one image.
# The Helm chart (helm/legate) runs both from it, as two containers of one pod,
# each with its own command.
#
#   docker build -t legate:0.1.0 .
#
# Build stage: Debian 12 with the build dependencies; `make install` puts the
# two binaries in /out/usr/local/bin. llhttp is compiled from node-llhttp's C
# sources into the proxy, so it is not needed at run time.
FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config ca-certificates \
      libuv1-dev libjson-c-dev libyaml-dev libcurl4-openssl-dev libssl-dev \
      libre2-dev node-llhttp \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make \
 && make install PREFIX=/usr/local DESTDIR=/out

# Runtime stage: the shared libraries the binaries link and the CA bundle
# (the controller verifies the API server, the proxy upstreams with TLS).
FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libjson-c5 libyaml-0-2 libcurl4 libssl3 libre2-9 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/usr/local/bin/legate-proxy /out/usr/local/bin/legate-controller /usr/local/bin/
# Fail the build if a shared library of either binary is missing here; add
# the user the chart runs as (uid 65532) and the control socket's directory
# (in the chart an emptyDir is mounted there).
RUN if ldd /usr/local/bin/legate-proxy /usr/local/bin/legate-controller | grep -F 'not found'; then exit 1; fi \
 && groupadd --system --gid 65532 legate \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin legate \
 && mkdir -p /var/run/legate \
 && chown 65532:65532 /var/run/legate
# 8080: HTTP traffic; 8877: admin (/ready, /live, /routes).
EXPOSE 8080 8877
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/legate-proxy"]
