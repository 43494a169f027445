#!/usr/bin/env bash
# Installs every system package Switchboard's build, run and tests need, on
# Debian 12, as root, the Kafka broker (tools/kafka/install.sh), grpcurl
# (built with Debian's Go into /usr/local/bin) and helm (built with the
# machine's Go into /opt/switchboard/helm). Idempotent: a second run finds
# everything installed and returns in about a second without touching apt's
# package lists.
#
# `bash tools/setup.sh --tsan` also builds Debian's own Abseil, gRPC and
# librdkafka source packages (the installed versions, with Debian's patches)
# with clang-14 -fsanitize=thread into /opt/switchboard/{absl,grpc,rdkafka}-tsan,
# for the tsan config of .bazelrc (about 13 minutes on 2 idle cores, gRPC
# most of it; once per version of each).
#
# `bash tools/setup.sh --build-only` installs the packages and nothing else
# (no Kafka broker, grpcurl or helm): deploy/docker/Dockerfile's build stage.
set -euo pipefail

tsan=false
tools=true
for arg in "$@"; do
  case "$arg" in
    --tsan) tsan=true ;;
    --build-only) tools=false ;;
    *) echo "usage: bash tools/setup.sh [--tsan] [--build-only]" >&2; exit 2 ;;
  esac
done

PACKAGES=(
  # Build
  bazel-bootstrap bazel-rules-java g++ pkg-config
  protobuf-compiler protobuf-compiler-grpc libprotobuf-dev
  libgrpc++-dev libabsl-dev
  # Libraries the services link
  libsqlite3-dev librdkafka-dev prometheus-cpp-dev libssl-dev
  # jemalloc replaces glibc's malloc in every binary built without sanitizers
  # (.bazelrc --custom_malloc)
  libjemalloc-dev
  # The bot's intent classifier (supervised fastText)
  libfasttext-dev
  # Attachments: libmagic sniffs file types (libs/filetype) with Debian's
  # compiled magic database
  libmagic-dev libmagic-mgc
  # Attachments in an S3-compatible object store (libs/blob: libcurl signs
  # requests with AWS SigV4)
  libcurl4-openssl-dev
  # PostgreSQL 15, the shared store beside SQLite (libs/storage/postgres):
  # libpq for the client, the server for tests (libs/testing/postgres starts
  # one in a temporary folder; the package's own cluster is not started)
  libpq-dev postgresql
  # Time zones of queues' hours of operation (Abseil reads /usr/share/zoneinfo)
  tzdata
  # Tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # ClamAV's daemon: the tests run a real clamd (libs/testing/clamd) on a
  # signature database they write themselves, and tools/run.sh one for the
  # local platform's upload scans; nothing is downloaded
  clamav-daemon
  # Tools: sqlite3 shell, curl for /metrics, kcat for Kafka, jq for JSON,
  # openssl for development certificates (tools/dev_certs.sh, run.sh --tls),
  # gnuplot for the benchmark report's latency pictures (tools/loadgen/plot.sh)
  sqlite3 curl ca-certificates kcat jq openssl gnuplot-nox
  # Prometheus and promtool (deploy/ checks, tests/e2e_test); Go builds grpcurl
  prometheus golang-go
  # deploy/helm's chart test reads rendered manifests with PyYAML
  python3-yaml
  # The Kafka broker for tests and local runs (jars from Maven Central)
  openjdk-17-jre-headless maven
  # Sanitizers, libFuzzer and thread-safety analysis (.bazelrc's clang, asan
  # and tsan configs, tools/fuzz.sh)
  clang-14 libclang-rt-14-dev
  # Building Debian's Abseil with ThreadSanitizer (--tsan)
  dpkg-dev cmake ninja-build debian-archive-keyring
)
# Building Debian's gRPC (its protoc plugin) and librdkafka (the compression
# and SASL libraries Debian's is built with) with ThreadSanitizer
if $tsan; then
  PACKAGES+=(libprotoc-dev libsasl2-dev libzstd-dev liblz4-dev)
fi

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

# helm (deploy/helm tests: helm lint and helm template) from the Go module
# proxy, built with the machine's Go at /usr/local/go (helm 3.22 needs Go
# 1.26; Debian's 1.19 is too old) into a folder of its own, linked from
# /usr/local/bin. About 4 minutes cold on 2 cores; the module and build
# caches are temporary, so nothing but the binary stays.
HELM_VERSION=v3.22.0
HELM_PREFIX=/opt/switchboard/helm
install_helm() {
  local installed=""
  if [[ -x "$HELM_PREFIX/bin/helm" ]]; then
    installed=$("$HELM_PREFIX/bin/helm" version --template '{{.Version}}' 2>/dev/null || true)
  fi
  [[ "$installed" == "$HELM_VERSION" ]] && return 0
  local go=/usr/local/go/bin/go
  if [[ ! -x "$go" ]]; then
    echo "setup: helm $HELM_VERSION needs Go 1.26 at /usr/local/go" >&2
    return 1
  fi
  echo "setup: building helm $HELM_VERSION into $HELM_PREFIX/bin"
  local work
  work=$(mktemp -d)
  mkdir -p "$HELM_PREFIX/bin"
  GOBIN="$HELM_PREFIX/bin" GOMODCACHE="$work/mod" GOCACHE="$work/cache" GOFLAGS=-modcacherw \
    CGO_ENABLED=0 GOTOOLCHAIN=local "$go" install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" || { rm -rf "$work"; return 1; }
  rm -rf "$work"
  ln -sf "$HELM_PREFIX/bin/helm" /usr/local/bin/helm
}

# gofakes3, an S3-compatible server for libs/blob's tests
# (libs/testing/fake_s3), from the Go module proxy with the machine's Go at
# /usr/local/go (it needs Go 1.24). About a minute cold.
GOFAKES3_VERSION=v1.2.0
GOFAKES3_PREFIX=/opt/switchboard/gofakes3
install_gofakes3() {
  [[ -x "$GOFAKES3_PREFIX/$GOFAKES3_VERSION/gofakes3" ]] && return 0
  local go=/usr/local/go/bin/go
  if [[ ! -x "$go" ]]; then
    echo "setup: gofakes3 $GOFAKES3_VERSION needs Go 1.24 or newer at /usr/local/go" >&2
    return 1
  fi
  echo "setup: building gofakes3 $GOFAKES3_VERSION into $GOFAKES3_PREFIX"
  local work
  work=$(mktemp -d)
  GOBIN="$GOFAKES3_PREFIX/$GOFAKES3_VERSION" GOMODCACHE="$work/mod" GOCACHE="$work/cache" \
    GOFLAGS=-modcacherw CGO_ENABLED=0 GOTOOLCHAIN=local "$go" install -trimpath -ldflags "-s -w" \
    "github.com/johannesboyne/gofakes3/cmd/gofakes3@$GOFAKES3_VERSION" \
    || { rm -rf "$work"; return 1; }
  rm -rf "$work"
  ln -sf "$GOFAKES3_PREFIX/$GOFAKES3_VERSION/gofakes3" /usr/local/bin/gofakes3
}

# ThreadSanitizer sees a lock only if the code taking it is instrumented, and
# Debian's libraries are not: every absl::Mutex section (ours and gRPC's), and
# every hand-over inside gRPC's core or librdkafka (their own atomics and
# locks), would look like a data race. So the tsan config runs against
# instrumented builds of the very same libraries: the installed packages'
# versions, from Debian's source packages with Debian's patches, with the
# SONAMEs of Debian's, so that the loader takes them in place of the
# system's copies (.bazelrc's tsan config puts their folders in the RPATH).

# Whether <prefix> must be (re)built: its VERSION file does not hold <stamp>.
tsan_build_needed() {
  local prefix=$1 stamp=$2
  if [[ -f "$prefix/VERSION" && "$(cat "$prefix/VERSION")" == "$stamp" ]]; then
    return 1
  fi
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: building $prefix with ThreadSanitizer needs root (or sudo)" >&2
    exit 1
  fi
}

# Debian's source package <srcpkg> in <version>, unpacked with Debian's
# patches into <dest> (which must not exist yet).
fetch_debian_source() {
  local package=$1 version=$2 dest=$3 work
  work=$(mktemp -d)
  # A deb-src list and package lists of its own: the machine's apt sources
  # and lists stay as they are.
  mkdir -p "$work/apt/sources.list.d" "$work/apt/lists/partial"
  cat >"$work/apt/sources.list.d/debian-src.sources" <<'SOURCES'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  # Root downloads into a folder of mktemp's, which apt's _apt user cannot
  # write to.
  local apt=(-o "Dir::Etc::SourceParts=$work/apt/sources.list.d"
    -o Dir::Etc::SourceList=/dev/null -o "Dir::State::Lists=$work/apt/lists"
    -o APT::Sandbox::User=root)
  apt-get "${apt[@]}" update -qq
  (cd "$work" && apt-get "${apt[@]}" source --download-only -qq "$package=$version" 2>/dev/null)
  # apt checked the files against the signed release; dpkg-source has no
  # keyring of Debian's developers to check the .dsc's own signature with.
  dpkg-source --no-check -x "$work/${package}_"*.dsc "$dest" >/dev/null
  rm -rf "$work"
}

TSAN_FLAGS="-g -O1 -fno-omit-frame-pointer -fsanitize=thread"

# Abseil. One annotation-only patch (third_party/sanitizers, where it says
# why) is applied on top of Debian's.
ABSL_TSAN_PREFIX=/opt/switchboard/absl-tsan
ABSL_TSAN_PATCH=$(cd "$(dirname "$0")/.." && pwd)/third_party/sanitizers/abseil_tsan_mutex_wakeup.patch
absl_tsan_stamp() {
  echo "$(dpkg-query -W -f='${Version}' libabsl-dev) $(sha256sum <"$ABSL_TSAN_PATCH" | cut -c1-16)"
}
build_absl_tsan() {
  local version stamp work
  version=$(dpkg-query -W -f='${source:Version}' libabsl-dev)
  stamp=$(absl_tsan_stamp)
  tsan_build_needed "$ABSL_TSAN_PREFIX" "$stamp" || return 0
  echo "setup: building Abseil $version with -fsanitize=thread into $ABSL_TSAN_PREFIX"
  work=$(mktemp -d)
  fetch_debian_source abseil "$version" "$work/src"
  patch -d "$work/src" -p1 --quiet <"$ABSL_TSAN_PATCH"
  # debian/rules' shared build: C++17, shared libraries, CMake build type
  # None (no NDEBUG), plus ThreadSanitizer.
  cmake -S "$work/src" -B "$work/build" -G Ninja -Wno-dev \
    -DCMAKE_BUILD_TYPE=None \
    -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
    -DCMAKE_C_FLAGS="$TSAN_FLAGS" -DCMAKE_CXX_FLAGS="$TSAN_FLAGS" \
    -DCMAKE_CXX_STANDARD=17 -DBUILD_SHARED_LIBS=ON \
    -DCMAKE_INSTALL_PREFIX="$ABSL_TSAN_PREFIX" -DCMAKE_INSTALL_LIBDIR=lib >/dev/null
  cmake --build "$work/build" -j "$(nproc)" >/dev/null
  rm -rf "$ABSL_TSAN_PREFIX"
  cmake --install "$work/build" >/dev/null
  echo "$stamp" >"$ABSL_TSAN_PREFIX/VERSION"
  rm -rf "$work"
}

# gRPC: the libraries our binaries load (core, C++, reflection and what core
# links), built against the instrumented Abseil and the system's other
# dependencies (protobuf, c-ares, RE2, OpenSSL, zlib). gRPC's CMake gives
# them Debian's SONAMEs (libgrpc.so.29, libgrpc++.so.1.51, ...).
GRPC_TSAN_PREFIX=/opt/switchboard/grpc-tsan
GRPC_TSAN_LIBS=(gpr grpc grpc++ grpc++_reflection address_sorting upb)
build_grpc_tsan() {
  local version stamp work
  version=$(dpkg-query -W -f='${source:Version}' libgrpc++-dev)
  stamp="$version absl $(absl_tsan_stamp)"
  tsan_build_needed "$GRPC_TSAN_PREFIX" "$stamp" || return 0
  echo "setup: building gRPC $version with -fsanitize=thread into $GRPC_TSAN_PREFIX"
  work=$(mktemp -d)
  fetch_debian_source grpc "$version" "$work/src"
  # The libraries find each other and Abseil in the prefixes (a RUNPATH);
  # the build's own protoc plugin (for reflection's generated code) finds
  # its libraries in the build folder.
  cmake -S "$work/src" -B "$work/build" -G Ninja -Wno-dev \
    -DCMAKE_BUILD_TYPE=None \
    -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
    -DCMAKE_C_FLAGS="$TSAN_FLAGS" -DCMAKE_CXX_FLAGS="$TSAN_FLAGS" \
    -DCMAKE_CXX_STANDARD=17 -DBUILD_SHARED_LIBS=ON \
    -DCMAKE_PREFIX_PATH="$ABSL_TSAN_PREFIX" \
    -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON \
    -DCMAKE_INSTALL_RPATH="$GRPC_TSAN_PREFIX/lib;$ABSL_TSAN_PREFIX/lib" \
    -DgRPC_ABSL_PROVIDER=package -DgRPC_PROTOBUF_PROVIDER=package \
    -DgRPC_CARES_PROVIDER=package -DgRPC_RE2_PROVIDER=package \
    -DgRPC_SSL_PROVIDER=package -DgRPC_ZLIB_PROVIDER=package \
    -DgRPC_BUILD_TESTS=OFF >/dev/null
  LD_LIBRARY_PATH="$work/build" cmake --build "$work/build" -j "$(nproc)" \
    --target "${GRPC_TSAN_LIBS[@]}" >/dev/null
  rm -rf "$GRPC_TSAN_PREFIX"
  mkdir -p "$GRPC_TSAN_PREFIX/lib"
  local lib
  for lib in "${GRPC_TSAN_LIBS[@]}"; do
    cp -a "$work/build/lib$lib.so".* "$GRPC_TSAN_PREFIX/lib/"
  done
  echo "$stamp" >"$GRPC_TSAN_PREFIX/VERSION"
  rm -rf "$work"
}

# librdkafka (C and C++), with the features of Debian's (no libcurl); its
# compiler warnings (clang's, not Debian's gcc's) are not ours to fix.
RDKAFKA_TSAN_PREFIX=/opt/switchboard/rdkafka-tsan
build_rdkafka_tsan() {
  local version stamp work
  version=$(dpkg-query -W -f='${source:Version}' librdkafka-dev)
  stamp=$version
  tsan_build_needed "$RDKAFKA_TSAN_PREFIX" "$stamp" || return 0
  echo "setup: building librdkafka $version with -fsanitize=thread into $RDKAFKA_TSAN_PREFIX"
  work=$(mktemp -d)
  fetch_debian_source librdkafka "$version" "$work/src"
  (cd "$work/src" &&
    CC=clang-14 CXX=clang++-14 CFLAGS="$TSAN_FLAGS -w" CXXFLAGS="$TSAN_FLAGS -w" \
      LDFLAGS=-fsanitize=thread ./configure --prefix="$RDKAFKA_TSAN_PREFIX" \
      --libdir="$RDKAFKA_TSAN_PREFIX/lib" --disable-curl >/dev/null &&
    make -j "$(nproc)" libs >/dev/null)
  rm -rf "$RDKAFKA_TSAN_PREFIX"
  mkdir -p "$RDKAFKA_TSAN_PREFIX/lib"
  cp -a "$work/src/src/librdkafka.so".* "$work/src/src-cpp/librdkafka++.so".* \
    "$RDKAFKA_TSAN_PREFIX/lib/"
  echo "$stamp" >"$RDKAFKA_TSAN_PREFIX/VERSION"
  rm -rf "$work"
}

build_tsan() {
  build_absl_tsan
  build_grpc_tsan
  build_rdkafka_tsan
}

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#PACKAGES[@]} packages present"
  if $tools; then
    install_kafka
    install_grpcurl
    install_helm
    install_gofakes3
  fi
  if $tsan; then build_tsan; fi
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
# start its own server on :9090, clamav's would download virus signatures,
# postgresql's would start a cluster on :5432):
# policy-rc.d tells invoke-rc.d not to.
policy=/usr/sbin/policy-rc.d
if [[ ! -e "$policy" ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
  systemctl disable --now prometheus prometheus-node-exporter clamav-daemon clamav-freshclam postgresql \
    >/dev/null 2>&1 || true
fi
if $tools; then
  install_kafka
  install_grpcurl
  install_helm
  install_gofakes3
fi
if $tsan; then build_tsan; fi
echo "setup: done"
