#!/usr/bin/env bash
# Checks the Helm chart deploy/helm/switchboard with the real helm and the
# real binaries, without Kubernetes:
#   - files/flags/<service>.txt is exactly the flags of <service>_server --help;
#   - helm lint --strict, and helm template with the default values and with
#     the scale-out values (testdata/postgres_tls.yaml: PostgreSQL, Kafka,
#     mTLS, cert-manager, PodMonitor, replicas, the bot's knowledge base),
#     each checked by check_manifests.py (flags, ports, probes, resources,
#     grace period, mounts, headless Services, PodDisruptionBudgets);
#   - values the chart must refuse, each with its message;
#   - the default render run for real: each binary started with its
#     ConfigMap's environment (paths moved to a temporary folder, ports to
#     free ones), asked by healthcheck for the service its probes name, then
#     stopped with SIGTERM, which it must survive with exit 0 well within the
#     grace period.
# Needs helm (tools/setup.sh builds it into /opt/switchboard/helm), python3
# with PyYAML, and openssl.
set -euo pipefail
root="${TEST_SRCDIR:-$(dirname "$0")/../../..}/${TEST_WORKSPACE:-switchboard}"
cd "$root"
helm=${HELM:-/opt/switchboard/helm/bin/helm}
[[ -x "$helm" ]] || { echo "FAIL: no helm at $helm; run tools/setup.sh" >&2; exit 1; }
checker=deploy/helm/check_manifests.py
services=(sessions routing bot presence identity feedback)
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/chart_test.XXXXXX")
export HOME="$work/home" XDG_CACHE_HOME="$work/cache" XDG_CONFIG_HOME="$work/config" \
  XDG_DATA_HOME="$work/data"
# A copy without Bazel's runfile symlinks, which helm warns about one by one.
cp -rL deploy/helm/switchboard "$work/switchboard"
chart="$work/switchboard"
failures=0
checks=0
pass() { checks=$((checks + 1)); }
fail() { echo "FAIL: $*" >&2; checks=$((checks + 1)); failures=$((failures + 1)); }

# Each binary's flags, as its --help prints them.
mkdir -p "$work/help"
for s in "${services[@]}"; do
  "services/$s/${s}_server" --help >"$work/help/$s.txt"
  sed -n 's/^  --\([a-z0-9_]*\)  .*/\1/p' "$work/help/$s.txt" >"$work/help/$s.flags"
  if diff -u "deploy/helm/switchboard/files/flags/$s.txt" "$work/help/$s.flags" >"$work/diff" 2>&1; then
    pass
  else
    fail "deploy/helm/switchboard/files/flags/$s.txt differs from ${s}_server --help (+ is the binary):"
    cat "$work/diff" >&2
  fi
done
tools/healthcheck/healthcheck --help >"$work/help/healthcheck.txt"

# A key folder as mint_token makes it, and identity's own key.
tools/mint_token/mint_token --generate_keys="$work/keys" >/dev/null
openssl rand -hex 32 >"$work/keys/identity.key"
key_args=()
for f in access.jwks services.jwks verification.jwks sessions.pem routing.pem feedback.pem \
  verification.pem; do
  key_args+=(--set-file "keys.files.${f//./\\.}=$work/keys/$f")
done
refuse_identity_key=("${key_args[@]}")
key_args+=(--set-file "keys.files.identity\\.key=$work/keys/identity.key")

# render NAME ARGS...: helm template into $work/NAME.yaml, then the checks.
render() {
  local name=$1
  shift
  if ! "$helm" template sb "$chart" --namespace desk "${key_args[@]}" "$@" \
    >"$work/$name.yaml" 2>"$work/$name.err"; then
    fail "helm template ($name): $(cat "$work/$name.err")"
    return
  fi
  pass
  if python3 "$checker" check "$work/$name.yaml" "$work/help"; then pass; else fail "$name render"; fi
}

if "$helm" lint --strict "$chart" "${key_args[@]}" >"$work/lint" 2>&1; then
  pass
else
  fail "helm lint --strict:"
  cat "$work/lint" >&2
fi
if "$helm" lint --strict "$chart" "${key_args[@]}" -f deploy/helm/testdata/postgres_tls.yaml \
  >"$work/lint" 2>&1; then
  pass
else
  fail "helm lint --strict (postgres_tls.yaml):"
  cat "$work/lint" >&2
fi

render default
render scaleout -f deploy/helm/testdata/postgres_tls.yaml \
  --set-file services.bot.knowledgeBase=services/bot/kb/intents.kb

# What the scale-out render must hold beyond the common checks.
# count KIND FILE
count() { grep -c "^kind: $1\$" "$2" || true; }
scaleout="$work/scaleout.yaml"
[[ -f "$scaleout" ]] && {
  [[ $(count Certificate "$scaleout") == 6 ]] && pass || fail "scaleout: want 6 Certificates"
  [[ $(count PodMonitor "$scaleout") == 1 ]] && pass || fail "scaleout: want a PodMonitor"
  [[ $(count PersistentVolumeClaim "$scaleout") == 0 ]] && pass ||
    fail "scaleout: PostgreSQL needs no PersistentVolumeClaim"
  grep -q 'SWITCHBOARD_SESSIONS_DATABASE: "postgresql://switchboard@db.internal' "$scaleout" &&
    pass || fail "scaleout: sessions is not given --database"
  grep -q 'name: PGPASSWORD' "$scaleout" && pass || fail "scaleout: no PGPASSWORD"
  grep -q 'SWITCHBOARD_SESSIONS_BOT_THREADS: "16"' "$scaleout" && pass ||
    fail "scaleout: services.sessions.flags.bot_threads not rendered"
  # The knowledge base arrives whole (ConfigMap data equals the file).
  python3 - "$scaleout" services/bot/kb/intents.kb <<'PY' && pass || fail "scaleout: knowledge base differs from services/bot/kb/intents.kb"
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kb = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-knowledge-base")]
sys.exit(0 if kb and kb[0]["data"]["intents.kb"] == open(sys.argv[2]).read().rstrip("\n") else 1)
PY
}

# refuse MESSAGE ARGS...: helm template must fail, saying MESSAGE.
refuse() {
  local message=$1
  shift
  if "$helm" template sb "$chart" "$@" >/dev/null 2>"$work/refused"; then
    fail "helm template $* was accepted; want: $message"
  elif grep -qF -- "$message" "$work/refused"; then
    pass
  else
    fail "helm template $*: want \"$message\", got: $(cat "$work/refused")"
  fi
}
refuse "keys: give keys.publicSecret"
refuse "services.sessions.replicas=2: SQLite is embedded" "${key_args[@]}" \
  --set services.sessions.replicas=2
refuse "database.postgresqlUrl needs kafka.brokers" "${key_args[@]}" \
  --set database.postgresqlUrl=postgresql://u@db/x --set database.password=p
refuse "database.postgresqlUrl holds a password" "${key_args[@]}" \
  --set database.postgresqlUrl=postgresql://u:secret@db/x --set kafka.brokers=k:9092
refuse "terminationGracePeriodSeconds=20 must exceed" "${key_args[@]}" \
  --set terminationGracePeriodSeconds=20
refuse "routing_server has no flag --offer_timout" "${key_args[@]}" \
  --set services.routing.flags.offer_timout=30s
refuse "services.bot.flags.port: the chart sets --port" "${key_args[@]}" \
  --set services.bot.flags.port=1
refuse "keys: identity needs identity.key" "${refuse_identity_key[@]}"
# values.schema.json: a misspelt key is an error, not a silent default.
refuse "additional properties 'sesions' not allowed" "${key_args[@]}" \
  --set services.sesions.replicas=2

# The default render, run: every service as its pod would start it.
if [[ -f "$work/default.yaml" ]]; then
  coproc PORTS { libs/testing/hold_ports 1 2 3 4 5 6 2001 2002 2003 2004 2005 2006; }
  read -r base <&"${PORTS[0]}" || { echo "FAIL: no free port range" >&2; exit 1; }
  pids=()
  cleanup() { kill -KILL "${pids[@]}" 2>/dev/null || true; kill "$PORTS_PID" 2>/dev/null || true; }
  trap cleanup EXIT
  port_args=()
  peer_rewrites=()
  for i in "${!services[@]}"; do
    s=${services[$i]}
    port_args+=(--set "services.$s.port=$((base + i + 1))"
      --set "services.$s.metricsPort=$((base + 2001 + i))")
    peer_rewrites+=("dns:///sb-switchboard-$s.desk.svc.cluster.local:=localhost:")
  done
  "$helm" template sb "$chart" --namespace desk "${key_args[@]}" "${port_args[@]}" \
    --set drainDeadlineSeconds=3 >"$work/live.yaml"
  grace=$(sed -n 's/^ *terminationGracePeriodSeconds: //p' "$work/live.yaml" | head -1)
  declare -A probe
  for s in "${services[@]}"; do
    mkdir -p "$work/pods/$s"
    python3 "$checker" env "$work/live.yaml" "$s" "/var/lib/switchboard=$work/pods/$s" \
      "/etc/switchboard/keys/public=$work/keys" "/etc/switchboard/keys/private=$work/keys" \
      "${peer_rewrites[@]}" >"$work/pods/$s.env"
    probe[$s]=$(sed -n 's/^probe //p' "$work/pods/$s.env")
    mapfile -t env_vars < <(grep -v '^probe ' "$work/pods/$s.env")
    env -i PATH=/usr/bin:/bin "${env_vars[@]}" "services/$s/${s}_server" \
      2>"$work/pods/$s.log" &
    pids+=($!)
  done
  for i in "${!services[@]}"; do
    s=${services[$i]}
    if tools/healthcheck/healthcheck --address="localhost:$((base + i + 1))" \
      --service="${probe[$s]}" --wait=60s >/dev/null 2>"$work/health"; then
      pass
    else
      fail "$s started from its ConfigMap is not SERVING ${probe[$s]}: $(cat "$work/health")"
      tail -5 "$work/pods/$s.log" >&2
    fi
  done
  # SIGTERM as Kubernetes sends it after preStop: each drains and exits 0
  # within the grace period left.
  kill -TERM "${pids[@]}"
  start=$SECONDS
  for i in "${!services[@]}"; do
    s=${services[$i]}
    code=0
    wait "${pids[$i]}" || code=$?
    if ((code == 0)); then pass; else fail "$s exited $code on SIGTERM"; fi
  done
  if ((SECONDS - start < grace)); then
    pass
  else
    fail "services took $((SECONDS - start)) s to stop, grace period $grace s"
  fi
  pids=()
fi

echo "chart: $((checks - failures)) passed, $failures failed"
((failures == 0))
