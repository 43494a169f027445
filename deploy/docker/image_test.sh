#!/usr/bin/env bash
# What can be checked of deploy/docker/Dockerfile without Docker:
#   - runtime_packages.sh finds a Debian package for every shared library the
#     Bazel-built binaries load, and none of them is a -dev package;
#   - the Dockerfile builds and copies every binary the Helm chart runs
#     (/usr/local/bin/<service>_server, healthcheck for TLS probes);
#   - every binary allocates through jemalloc (libjemalloc2 in the image);
#   - the image's user is the one the chart runs as.
set -euo pipefail
cd "${TEST_SRCDIR:-$(dirname "$0")/../../..}/${TEST_WORKSPACE:-switchboard}"
dockerfile=deploy/docker/Dockerfile
failures=0
checks=0
pass() { checks=$((checks + 1)); }
fail() { echo "FAIL: $*" >&2; checks=$((checks + 1)); failures=$((failures + 1)); }

binaries=(tools/healthcheck/healthcheck tools/kafka_topics/kafka_topics)
for s in sessions routing bot presence identity feedback; do
  binaries+=("services/$s/${s}_server")
done
# The image is built without sanitizers; a --config=tsan build loads the
# instrumented Abseil, gRPC and librdkafka of setup.sh --tsan from
# /opt/switchboard instead of Debian's, which no package holds. (grep reads
# all of ldd's output: with -q it would stop at the first match and ldd's
# SIGPIPE would fail the pipeline.)
if ldd "${binaries[@]}" | grep '=> /opt/switchboard/' >/dev/null; then
  echo "image_test: sanitizer build (libraries from /opt/switchboard): package list not checked"
else
  if packages=$(bash deploy/docker/runtime_packages.sh "${binaries[@]}"); then
    pass
  else
    fail "runtime_packages.sh: a library the binaries load has no package"
  fi
  [[ -n "$packages" ]] && pass || fail "runtime_packages.sh printed no package"
  if grep -- '-dev$' <<<"$packages"; then
    fail "runtime packages include -dev packages"
  else
    pass
  fi
  echo "runtime packages: $(tr '\n' ' ' <<<"$packages")"
  grep -qx libjemalloc2 <<<"$packages" && pass || fail "the binaries do not load libjemalloc2"
  # Each allocates through jemalloc, not glibc's malloc: jemalloc prints its
  # statistics at exit when MALLOC_CONF asks, and glibc ignores MALLOC_CONF.
  # (--helpfull exits at once, with status 1.)
  for binary in "${binaries[@]}"; do
    output=$(MALLOC_CONF=stats_print:true "$binary" --helpfull 2>&1 || true)
    grep 'jemalloc statistics' <<<"$output" >/dev/null && pass ||
      fail "$binary does not allocate through jemalloc"
  done
fi

# The chart runs /usr/local/bin/<service>_server and, on TLS ports,
# /usr/local/bin/healthcheck; the Dockerfile builds and copies them there.
for s in sessions routing bot presence identity feedback; do
  grep -q "//services/$s:${s}_server" "$dockerfile" && pass ||
    fail "$dockerfile does not build //services/$s:${s}_server"
done
grep -qF '"/usr/local/bin/%s_server"' deploy/helm/switchboard/templates/deployments.yaml && pass ||
  fail "the chart no longer runs /usr/local/bin/<service>_server"
grep -q '//tools/healthcheck' "$dockerfile" && pass || fail "$dockerfile does not build healthcheck"
grep -q '/usr/local/bin/healthcheck' deploy/helm/switchboard/templates/deployments.yaml && pass ||
  fail "the chart's TLS probes no longer run /usr/local/bin/healthcheck"
grep -q '^COPY --from=build /out/bin/ /usr/local/bin/$' "$dockerfile" && pass ||
  fail "$dockerfile does not copy the binaries to /usr/local/bin"

# The user: the image's and the chart's.
image_user=$(sed -n 's/^USER \([0-9]*\):.*/\1/p' "$dockerfile")
chart_user=$(sed -n 's/^  runAsUser: //p' deploy/helm/switchboard/values.yaml)
[[ -n "$image_user" && "$image_user" == "$chart_user" ]] && pass ||
  fail "image user '$image_user', chart runAsUser '$chart_user'"

echo "image: $((checks - failures)) passed, $failures failed"
((failures == 0))
