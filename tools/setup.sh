#!/usr/bin/env bash
# Installs every system package Switchboard's build, run and tests need, on
# Debian 12, as root, the Kafka broker (tools/kafka/install.sh) and grpcurl
# (built with Debian's Go into /usr/local/bin). Idempotent: a second run finds
# everything installed and returns in about a second without touching apt's
# package lists.
set -euo pipefail

PACKAGES=(
  # Build
  bazel-bootstrap bazel-rules-java g++ pkg-config
  protobuf-compiler protobuf-compiler-grpc libprotobuf-dev
  libgrpc++-dev libabsl-dev
  # Libraries the services link
  libsqlite3-dev librdkafka-dev prometheus-cpp-dev libssl-dev
  # The bot's intent classifier (supervised fastText)
  libfasttext-dev
  # Tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # Tools: sqlite3 shell, curl for /metrics, kcat for Kafka, jq for JSON,
  # openssl for development certificates (tools/dev_certs.sh, run.sh --tls)
  sqlite3 curl ca-certificates kcat jq openssl
  # Prometheus and promtool (deploy/ checks, tests/e2e_test); Go builds grpcurl
  prometheus golang-go
  # The Kafka broker for tests and local runs (jars from Maven Central)
  openjdk-17-jre-headless maven
)

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

install_kafka() {
  bash "$(dirname "$0")/kafka/install.sh"
}

# grpcurl from the Go module proxy, in a version that builds with Debian 12's
# Go 1.19 (/usr/bin/go, whatever else is on PATH).
GRPCURL_VERSION=v1.8.7
install_grpcurl() {
  [[ -x /usr/local/bin/grpcurl ]] && return 0
  echo "setup: building grpcurl $GRPCURL_VERSION into /usr/local/bin"
  GOBIN=/usr/local/bin /usr/bin/go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
}

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#PACKAGES[@]} packages present"
  install_kafka
  install_grpcurl
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "setup: missing packages: ${missing[*]}; run as root (or with sudo)" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Installing packages must not start services (the prometheus package would
# start its own server on :9090): policy-rc.d tells invoke-rc.d not to.
policy=/usr/sbin/policy-rc.d
if [[ ! -e "$policy" ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
  systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
fi
install_kafka
install_grpcurl
echo "setup: done"
