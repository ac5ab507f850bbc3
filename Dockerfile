# The registrator image: two static binaries FROM scratch (see below).
# Build it with `make image` (PLATFORM=linux/arm64 for arm64 hosts), which
# compiles the two static binaries for the platform into the build context,
# build/image/<platform>/, with the host's CA bundle beside it; nothing is
# pulled, and nothing runs during the build.
FROM scratch
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# /bin/registrator is the lean build (every backend but etcd and skydns2,
# about 6 MB less memory); given an etcd:// or skydns2:// URI it hands
# itself over (exec) to the full build beside it, same PID, same arguments.
COPY registrator /bin/registrator
COPY registrator-full /bin/registrator-full
# The HTTP listener (metrics, /health, /ready, /v1/services) is on by default
# in the image, on the host's loopback when run with --net=host; the
# HEALTHCHECK asks it for /health. Set REGISTRATOR_HTTP_ADDR to move it.
ENV REGISTRATOR_HTTP_ADDR=127.0.0.1:9333
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s CMD ["/bin/registrator", "-healthcheck"]
ENTRYPOINT ["/bin/registrator"]
