#!/usr/bin/env bash
# Installs every system package Switchboard's build, run and tests need, on
# Debian 12, as root, and the Kafka broker (tools/kafka/install.sh). Idempotent: a second run finds everything installed and
# returns in about a second without touching apt's package lists.
set -euo pipefail

PACKAGES=(
  # Build
  bazel-bootstrap bazel-rules-java g++ pkg-config
  protobuf-compiler protobuf-compiler-grpc libprotobuf-dev
  libgrpc++-dev libabsl-dev
  # Libraries the services link
  libsqlite3-dev librdkafka-dev prometheus-cpp-dev libjwt-dev libssl-dev
  # Tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # Tools: sqlite3 shell, curl for /metrics, kcat for Kafka
  sqlite3 curl ca-certificates kcat
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

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#PACKAGES[@]} packages present"
  install_kafka
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "setup: missing packages: ${missing[*]}; run as root (or with sudo)" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
install_kafka
echo "setup: done"
