#!/usr/bin/env bash
# setup.sh: make this machine ready to build, run and test registrator.
#  - a Docker engine: installed from Debian's docker.io package when dockerd
#    is missing, and started in the background when `docker info` fails;
#  - an etcd server binary (Debian's etcd-server, 3.4, v3 API) and a
#    ZooKeeper server (Debian's zookeeper, 3.8, with a JRE) for the tests,
#    which start their own servers on free loopback ports;
#  - a Consul binary for the tests and `make run` (scripts/get-consul.sh);
#  - a CoreDNS binary for the skydns2 test (scripts/get-coredns.sh);
#  - Podman (Debian's, 4.3) with its Docker-compatible service on
#    /run/podman/podman.sock, for the Podman tests, and catatonit, which
#    Podman builds its pods' infra image from; and a rootless Podman, run
#    by the user registrator-rootless, its service on
#    /run/user/<uid>/podman/podman.sock;
#  - Prometheus and promtool (Debian's prometheus, 2.42) for the alert
#    rules' tests (the tests start their own Prometheus on loopback).
# Safe to run again: it only does what is missing. Needs root (or sudo) for
# the install and for starting dockerd.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
[ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null 2>&1 || missing+=(zookeeper)
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v catatonit >/dev/null 2>&1 || [ -x /usr/libexec/podman/catatonit ] || missing+=(catatonit)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi
echo "setup: $(etcd --version | head -1)" >&2

if ! docker info >/dev/null 2>&1; then
  log=/var/log/dockerd-registrator.log
  echo "setup: starting dockerd (log: $log)" >&2
  as_root sh -c "nohup setsid dockerd >>'$log' 2>&1 </dev/null &"
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { echo "setup: dockerd did not come up; see $log" >&2; tail -20 "$log" >&2; exit 1; }
fi
echo "setup: Docker engine $(docker version -f '{{.Server.Version}} (API {{.Server.APIVersion}})')" >&2

# Podman's Docker-compatible service, for the Podman tests. This machine
# kind forbids raising nofile and nproc, which Podman does by default.
conf=/etc/containers/containers.conf.d/registrator-ulimits.conf
if [ ! -f "$conf" ]; then
  as_root mkdir -p "$(dirname "$conf")"
  printf '[containers]\ndefault_ulimits = []\n' | as_root tee "$conf" >/dev/null
fi
podman_sock=/run/podman/podman.sock
if ! curl -sf --unix-socket "$podman_sock" http://podman/_ping >/dev/null 2>&1; then
  log=/var/log/podman-registrator.log
  echo "setup: starting podman system service on $podman_sock (log: $log)" >&2
  as_root mkdir -p /run/podman
  as_root sh -c "nohup setsid podman system service --time=0 unix://$podman_sock >>'$log' 2>&1 </dev/null &"
  for _ in $(seq 1 30); do
    curl -sf --unix-socket "$podman_sock" http://podman/_ping >/dev/null 2>&1 && break
    sleep 1
  done
  curl -sf --unix-socket "$podman_sock" http://podman/_ping >/dev/null 2>&1 || { echo "setup: podman service did not come up; see $log" >&2; tail -20 "$log" >&2; exit 1; }
fi
echo "setup: $(podman --version), service on $podman_sock" >&2

# A rootless Podman, for the rootless tests: a user of its own with
# subordinate uid and gid ranges, its runtime directory, and its service
# on $XDG_RUNTIME_DIR/podman/podman.sock. slirp4netns (rootless
# networking) opens /dev/net/tun as that user: 0666 as on stock Debian.
rl_user=registrator-rootless
id -u "$rl_user" >/dev/null 2>&1 || as_root useradd --create-home --shell /usr/sbin/nologin "$rl_user"
grep -q "^$rl_user:" /etc/subuid || as_root usermod --add-subuids 100000-165535 "$rl_user"
grep -q "^$rl_user:" /etc/subgid || as_root usermod --add-subgids 100000-165535 "$rl_user"
[ "$(stat -c %a /dev/net/tun)" = 666 ] || as_root chmod 0666 /dev/net/tun
rl_uid=$(id -u "$rl_user")
rl_run=/run/user/$rl_uid
rl_sock=$rl_run/podman/podman.sock
as_root install -d -o "$rl_user" -g "$(id -gn "$rl_user")" -m 0700 "$rl_run"
as_root install -d -o "$rl_user" -g "$(id -gn "$rl_user")" -m 0700 "$rl_run/podman"
as_user() { as_root runuser -u "$rl_user" -- env -C "/home/$rl_user" HOME="/home/$rl_user" XDG_RUNTIME_DIR="$rl_run" "$@"; }
if ! as_root curl -sf --unix-socket "$rl_sock" http://podman/_ping >/dev/null 2>&1; then
  log=/var/log/podman-rootless-registrator.log
  echo "setup: starting $rl_user's rootless podman system service on $rl_sock (log: $log)" >&2
  as_root touch "$log"
  as_root chown "$rl_user" "$log"
  as_user sh -c "nohup setsid podman system service --time=0 unix://$rl_sock >>'$log' 2>&1 </dev/null &"
  for _ in $(seq 1 30); do
    as_root curl -sf --unix-socket "$rl_sock" http://podman/_ping >/dev/null 2>&1 && break
    sleep 1
  done
  as_root curl -sf --unix-socket "$rl_sock" http://podman/_ping >/dev/null 2>&1 || { echo "setup: rootless podman service did not come up; see $log" >&2; tail -20 "$log" >&2; exit 1; }
fi
echo "setup: rootless Podman of $rl_user (uid $rl_uid), service on $rl_sock" >&2

consul=$(scripts/get-consul.sh)
echo "setup: Consul at $consul" >&2
coredns=$(scripts/get-coredns.sh)
echo "setup: CoreDNS at $coredns" >&2
