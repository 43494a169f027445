#!/usr/bin/env bash
# Rewrites deploy/helm/switchboard/files/flags/<service>.txt from each
# binary's --help: run it after adding or removing a flag of a service
# (//deploy/helm:chart_test fails until the lists match the binaries).
set -euo pipefail
cd "$(dirname "$0")/../.."
services=(sessions routing bot presence identity feedback)
targets=()
for s in "${services[@]}"; do targets+=("//services/$s:${s}_server"); done
bazel build "${targets[@]}"
bin=$(bazel info bazel-bin)
for s in "${services[@]}"; do
  "$bin/services/$s/${s}_server" --help | sed -n 's/^  --\([a-z0-9_]*\)  .*/\1/p' \
    >"deploy/helm/switchboard/files/flags/$s.txt"
done
git status --short deploy/helm/switchboard/files/flags
