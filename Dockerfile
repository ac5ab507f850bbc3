# The registrator image: one static binary FROM scratch.
# Build it with `make image`, which compiles build/registrator (CGO_ENABLED=0)
# and copies the host's CA bundle beside it; nothing is pulled.
FROM scratch
COPY build/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY build/registrator /bin/registrator
ENTRYPOINT ["/bin/registrator"]
