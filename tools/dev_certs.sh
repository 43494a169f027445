#!/usr/bin/env bash
# Makes a development certificate authority and certificates it signs, with
# openssl, for running Switchboard over TLS and mTLS on one machine
# (tools/run.sh --tls) and for the TLS tests. Not for production: there,
# certificates come from the organisation's CA (cert-manager, Vault, ...).
#
#   bash tools/dev_certs.sh DIR NAME...
#
# DIR/ca.pem, DIR/ca.key   the CA (ECDSA P-256, 10 years), made if missing.
# DIR/NAME.pem, NAME.key   a certificate for each NAME (CN=NAME; SAN
#                          localhost, 127.0.0.1 and ::1; usable both to serve
#                          and as a client certificate, so a service presents
#                          one certificate on its port and on its calls to
#                          peers), made if missing, and made again if it
#                          expires within 30 days or DIR's CA did not sign it.
#
# Files are replaced by rename, so a server watching them never reads half a
# file (restart running services after a re-issue: key and certificate are
# two renames); private keys are readable by their owner only. Prints the files it
# made; a second run with nothing to do prints nothing.
set -euo pipefail

if (($# < 2)); then
  echo "usage: tools/dev_certs.sh DIR NAME..." >&2
  exit 2
fi
dir=$1
shift
for name in "$@"; do
  if [[ ! "$name" =~ ^[a-z0-9][a-z0-9_-]*$ ]] || [[ "$name" == ca ]]; then
    echo "dev_certs: \"$name\" is not a certificate name (lower-case letters, digits, - and _; not \"ca\")" >&2
    exit 2
  fi
done
command -v openssl >/dev/null || { echo "dev_certs: openssl is not installed" >&2; exit 1; }
umask 077
mkdir -p "$dir"
work=$(mktemp -d "$dir/.dev_certs.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Writes openssl's output to a temporary file and renames it into place.
# $1: the final path; the rest: the openssl command writing to "$work/out".
install_from() {
  local final=$1
  shift
  "$@" >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
  mv -f "$work/out" "$final"
  echo "$final"
}

if [[ ! -s "$dir/ca.pem" || ! -s "$dir/ca.key" ]]; then
  install_from "$dir/ca.key" openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -out "$work/out"
  install_from "$dir/ca.pem" openssl req -x509 -new -key "$dir/ca.key" -sha256 -days 3650 \
    -subj "/O=Switchboard development/CN=Switchboard development CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$work/out"
  chmod 644 "$dir/ca.pem"
fi

cat >"$work/leaf.ext" <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
EOF

for name in "$@"; do
  cert="$dir/$name.pem"
  key="$dir/$name.key"
  if [[ -s "$cert" && -s "$key" ]] &&
    openssl x509 -in "$cert" -noout -checkend $((30 * 24 * 3600)) >/dev/null 2>&1 &&
    openssl verify -CAfile "$dir/ca.pem" "$cert" >/dev/null 2>&1 &&
    [[ "$(openssl x509 -in "$cert" -noout -pubkey 2>/dev/null)" == \
      "$(openssl pkey -in "$key" -pubout 2>/dev/null)" ]]; then
    continue
  fi
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/$name.key" \
    >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
  openssl req -new -key "$work/$name.key" -subj "/O=Switchboard development/CN=$name" \
    -out "$work/$name.csr" >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
  openssl x509 -req -in "$work/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -sha256 \
    -days 397 -set_serial "0x$(openssl rand -hex 16)" -extfile "$work/leaf.ext" \
    -out "$work/$name.pem" >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
  chmod 644 "$work/$name.pem"
  mv -f "$work/$name.key" "$key"
  mv -f "$work/$name.pem" "$cert"
  echo "$cert"
  echo "$key"
done
