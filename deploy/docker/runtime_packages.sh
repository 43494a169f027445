#!/usr/bin/env bash
# Prints the Debian packages that hold the shared libraries BINARY... load
# (ldd), one per line, sorted: what the runtime image installs for them.
# Exit 1, naming the library, if a library is missing or belongs to no
# package (a runtime image without it would not start).
#
#   bash deploy/docker/runtime_packages.sh bazel-bin/services/*/*_server
set -euo pipefail
(($# > 0)) || { echo "usage: runtime_packages.sh BINARY..." >&2; exit 2; }
status=0
declare -A libraries=()
while read -r library path; do
  if [[ "$path" == "not" ]]; then
    echo "runtime_packages: $library not found" >&2
    status=1
  else
    libraries[$path]=1
  fi
done < <(ldd "$@" | awk '$2 == "=>" {print $1, $3}')

# Debian 12 merged /lib into /usr/lib; dpkg knows each file by one of the
# names it can be reached by. One dpkg-query for all of them (it reads its
# whole file list on each call).
declare -A candidates=()
for path in "${!libraries[@]}"; do
  for candidate in "$path" "/usr$path" "${path#/usr}" "$(realpath "$path")"; do
    candidates[$candidate]=1
  done
done
declare -A owner=()
while IFS= read -r line; do
  # "libssl3:amd64: /usr/lib/x86_64-linux-gnu/libssl.so.3"
  owner[${line##*: }]=${line%%:*}
done < <(dpkg-query -S "${!candidates[@]}" 2>/dev/null || true)

declare -A packages=()
for path in "${!libraries[@]}"; do
  package=""
  for candidate in "$path" "/usr$path" "${path#/usr}" "$(realpath "$path")"; do
    package=${owner[$candidate]:-}
    [[ -n "$package" ]] && break
  done
  if [[ -z "$package" ]]; then
    echo "runtime_packages: $path belongs to no package" >&2
    status=1
  else
    packages[$package]=1
  fi
done
((status == 0)) || exit 1
printf '%s\n' "${!packages[@]}" | sort
