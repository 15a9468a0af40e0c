# Multi-stage build: a static casevault binary (modernc SQLite needs no cgo)
# on a distroless base that runs as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=docker" \
      -o /out/casevault ./cmd/casevault
# The data directory, owned by the user the server runs as (distroless
# nonroot, 65532) and private to it: serve creates index/ and backups/ in
# it. A named volume mounted there starts with this owner and mode.
RUN mkdir -p /out/data && chown 65532:65532 /out/data && chmod 0700 /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/casevault /casevault
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
VOLUME ["/data"]
ENV CASEVAULT_DATA_DIR=/data CASEVAULT_LISTEN=0.0.0.0:8080
EXPOSE 8080
# No shell or HTTP client in the image: the binary asks its own /readyz.
HEALTHCHECK --interval=10s --timeout=6s --start-period=60s --retries=3 CMD ["/casevault", "healthcheck"]
ENTRYPOINT ["/casevault"]
CMD ["serve"]
