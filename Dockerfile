# Multi-stage build: a static casevault binary (modernc SQLite needs no cgo)
# on a distroless base that runs as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=docker" \
      -o /out/casevault ./cmd/casevault

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/casevault /casevault
USER nonroot:nonroot
VOLUME ["/data"]
ENV CASEVAULT_DATA_DIR=/data CASEVAULT_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/casevault"]
CMD ["serve"]
