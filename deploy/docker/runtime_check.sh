#!/usr/bin/env bash
# Checks the Dockerfile's runtime stage without Docker: makes a minimal
# Debian 12 file system with debootstrap (what debian:12-slim is), runs the
# runtime stage's RUN command in it (read from deploy/docker/Dockerfile, with
# the package list runtime_packages.sh derives from the binaries), copies the
# binaries in, then starts the six servers in it as user 10001 with the
# environment the Helm chart's default render gives them, checks each
# answers its health check, and stops them with SIGTERM (each must exit 0).
#
#   sudo bash deploy/docker/runtime_check.sh     # about 3 minutes
#
# Needs root (chroot, mounts), debootstrap, and Debian's mirror; not part of
# CI. Builds the binaries with Bazel's default options: the libraries they
# load are the image's (-c opt changes code, not libraries).
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ $(id -u) -eq 0 ]] || { echo "runtime_check: needs root" >&2; exit 1; }
if ! command -v debootstrap >/dev/null; then
  echo "runtime_check: needs debootstrap (apt-get install debootstrap)" >&2
  exit 1
fi
services=(sessions routing bot presence identity feedback)
targets=(//tools/healthcheck //tools/kafka_topics //tools/mint_token)
for s in "${services[@]}"; do targets+=("//services/$s:${s}_server"); done
bazel build "${targets[@]}"
bin=$(bazel info bazel-bin)

work=$(mktemp -d)
root="$work/rootfs"
pids=()
cleanup() {
  kill -KILL "${pids[@]}" 2>/dev/null || true
  umount "$root/proc" "$root/dev" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "runtime_check: debootstrap bookworm (minbase) into $root"
debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$work/debootstrap.log"
# What a container runtime provides.
cp /etc/resolv.conf "$root/etc/resolv.conf"
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n' >"$root/etc/hosts"

binaries=("$bin/tools/healthcheck/healthcheck" "$bin/tools/kafka_topics/kafka_topics")
for s in "${services[@]}"; do binaries+=("$bin/services/$s/${s}_server"); done
bash deploy/docker/runtime_packages.sh "${binaries[@]}" >"$root/tmp/runtime-packages"
# The runtime stage's RUN command, continuation lines joined.
run=$(awk '/^FROM debian:12-slim/ {stage = 1} stage && /^RUN / {run = 1}
  run {sub(/^RUN /, ""); line = line " " $0; if (!/\\$/) {print line; exit}}' \
  deploy/docker/Dockerfile | sed 's/\\$//; s/ \\ / /g')
[[ -n "$run" ]] || { echo "runtime_check: no RUN in the runtime stage" >&2; exit 1; }
echo "runtime_check: RUN$run"
chroot "$root" /bin/sh -ec "$run" >"$work/run.log" 2>&1 || {
  cat "$work/run.log" >&2
  exit 1
}
cp "${binaries[@]}" "$root/usr/local/bin/"

# Keys where the chart mounts them, and the chart's default render on
# ports of this run.
"$bin/tools/mint_token/mint_token" --generate_keys="$work/keys" >/dev/null
openssl rand -hex 32 >"$work/keys/identity.key"
mkdir -p "$root/etc/switchboard/keys/public" "$root/etc/switchboard/keys/private"
cp "$work/keys/"*.jwks "$root/etc/switchboard/keys/public/"
cp "$work/keys/"{sessions,routing,feedback,verification}.pem "$work/keys/identity.key" \
  "$root/etc/switchboard/keys/private/"
chown -R 10001:10001 "$root/etc/switchboard/keys"
key_args=()
for f in access.jwks services.jwks verification.jwks sessions.pem routing.pem feedback.pem \
  verification.pem identity.key; do
  key_args+=(--set-file "keys.files.${f//./\\.}=$work/keys/$f")
done
base=27100
port_args=()
rewrites=()
for i in "${!services[@]}"; do
  s=${services[$i]}
  port_args+=(--set "services.$s.port=$((base + i + 1))"
    --set "services.$s.metricsPort=$((base + 2001 + i))")
  rewrites+=("dns:///sb-switchboard-$s.desk.svc.cluster.local:=localhost:")
done
helm template sb deploy/helm/switchboard --namespace desk "${key_args[@]}" "${port_args[@]}" \
  >"$work/render.yaml"

mount --bind /proc "$root/proc"
mount --bind /dev "$root/dev"
for s in "${services[@]}"; do
  python3 deploy/helm/check_manifests.py env "$work/render.yaml" "$s" "${rewrites[@]}" \
    >"$work/$s.env"
  mapfile -t env_vars < <(grep -v '^probe' "$work/$s.env")
  chroot --userspec=10001:10001 "$root" env -i PATH=/usr/bin:/bin "${env_vars[@]}" \
    "/usr/local/bin/${s}_server" 2>"$work/$s.log" &
  pids+=($!)
done
failed=0
for s in "${services[@]}"; do
  IFS=$'\t' read -r -a probe < <(sed -n 's/^probe\t//p' "$work/$s.env")
  if ! chroot "$root" /usr/local/bin/healthcheck "${probe[@]}" --wait=60s; then
    tail -5 "$work/$s.log" >&2
    failed=1
  fi
done
kill -TERM "${pids[@]}"
for i in "${!services[@]}"; do
  code=0
  wait "${pids[$i]}" || code=$?
  echo "runtime_check: ${services[$i]} exited $code"
  ((code == 0)) || failed=1
done
pids=()
if ((failed)); then
  echo "runtime_check: FAILED" >&2
  exit 1
fi
echo "runtime_check: the six servers run on the runtime stage's file system"
