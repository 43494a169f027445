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
#   - the default render, and the same with mTLS, run for real: each binary
#     started with its ConfigMap's environment (paths moved to a temporary
#     folder, ports to free ones), its readiness probe run (the gRPC probe's
#     question, or the exec probe's own healthcheck command with the
#     service's certificate), then stopped with SIGTERM, which it must
#     survive with exit 0 within the grace period.
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
  if diff -u "deploy/helm/switchboard/files/flags/$s.txt" "$work/help/$s.flags" \
    >"$work/diff" 2>&1; then
    pass
  else
    fail "deploy/helm/switchboard/files/flags/$s.txt differs from ${s}_server --help" \
      "(+ is the binary; bash deploy/helm/update_flag_lists.sh rewrites the lists):"
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
  if python3 "$checker" check "$work/$name.yaml" "$work/help"; then
    pass
  else
    fail "$name render"
  fi
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
  # Presence, sessions and routing run as a leader and hot standbys: their
  # replicas are kept and rolled like the others' (a new pod waits as a
  # standby, ready through the leader, before an old one goes), a standby
  # is alive (startup and liveness fetch /metrics) and ready only as gRPC
  # health answers (forwarded to the leader), each pod advertises its own
  # IP to its standbys, and their disruption budgets count pods as the
  # others' do.
  if python3 - "$scaleout" >"$work/standbys" 2>&1 <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
deployments = {d["metadata"]["name"].rsplit("-", 1)[-1]: d
               for d in docs if d["kind"] == "Deployment"}
budgets = {d["metadata"]["name"].rsplit("-", 1)[-1]: d["spec"]["maxUnavailable"]
           for d in docs if d["kind"] == "PodDisruptionBudget"}
problems = []
for name, replicas in (("presence", 2), ("sessions", 2), ("routing", 3), ("feedback", 2)):
    spec = deployments[name]["spec"]
    standbys = name != "feedback"
    if spec["replicas"] != replicas:
        problems.append(f"{name}: replicas {spec['replicas']}, want {replicas}")
    strategy = spec["strategy"]["type"]
    if strategy != "RollingUpdate":
        problems.append(f"{name}: strategy {strategy}")
    container = spec["template"]["spec"]["containers"][0]
    for kind in ("startupProbe", "livenessProbe"):
        fetches_metrics = container[kind].get("httpGet") == {"path": "/metrics", "port": "metrics"}
        if fetches_metrics != standbys:
            problems.append(f"{name}: {kind} {container[kind]}")
    if "exec" not in container["readinessProbe"]:
        problems.append(f"{name}: readinessProbe {container['readinessProbe']}")
    env = {e["name"]: e for e in container.get("env", [])}
    advertised = env.get(f"SWITCHBOARD_{name.upper()}_ADVERTISE_ADDRESS", {}).get("value")
    port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
    pod_ip = env.get("POD_IP", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    if standbys != (advertised == f"$(POD_IP):{port}" and pod_ip == "status.podIP"):
        problems.append(f"{name}: advertise address {advertised}, POD_IP from {pod_ip}")
    if budgets[name] != 1:
        problems.append(f"{name}: PodDisruptionBudget maxUnavailable {budgets[name]}, want 1")
print("\n".join(problems))
sys.exit(1 if problems else 0)
PY
  then
    pass
  else
    fail "scaleout: leader and standbys: $(cat "$work/standbys")"
  fi
  grep -q 'SWITCHBOARD_SESSIONS_BOT_THREADS: "16"' "$scaleout" && pass ||
    fail "scaleout: services.sessions.flags.bot_threads not rendered"
  # The knowledge base arrives whole (ConfigMap data equals the file).
  if python3 - "$scaleout" services/bot/kb/intents.kb <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kb = [d for d in docs
      if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-knowledge-base")]
sys.exit(0 if kb and kb[0]["data"]["intents.kb"] == open(sys.argv[2]).read().rstrip("\n") else 1)
PY
  then
    pass
  else
    fail "scaleout: the knowledge base ConfigMap differs from services/bot/kb/intents.kb"
  fi
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
refuse "services.presence.replicas=2: SQLite is embedded" "${key_args[@]}" \
  --set services.presence.replicas=2
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

# live NAME TRANSPORT ARGS...: renders with ARGS (ports moved to free ones),
# starts every binary with its ConfigMap's environment (files moved into
# $work), checks it serves TRANSPORT (its server_started log line) and
# passes its readiness probe, then stops it as Kubernetes would.
coproc PORTS { libs/testing/hold_ports 1 2 3 4 5 6 2001 2002 2003 2004 2005 2006; }
read -r base <&"${PORTS[0]}" || { echo "FAIL: no free port range" >&2; exit 1; }
pids=()
cleanup() { kill -KILL "${pids[@]}" 2>/dev/null || true; kill "$PORTS_PID" 2>/dev/null || true; }
trap cleanup EXIT
live() {
  local name=$1 transport=$2
  shift 2
  local port_args=() rewrites=() i s code start
  for i in "${!services[@]}"; do
    s=${services[$i]}
    port_args+=(--set "services.$s.port=$((base + i + 1))"
      --set "services.$s.metricsPort=$((base + 2001 + i))")
    rewrites+=("dns:///sb-switchboard-$s.desk.svc.cluster.local:=localhost:")
  done
  if ! "$helm" template sb "$chart" --namespace desk "${key_args[@]}" "${port_args[@]}" \
    --set drainDeadlineSeconds=3 "$@" >"$work/$name.yaml" 2>"$work/$name.err"; then
    fail "helm template ($name): $(cat "$work/$name.err")"
    return
  fi
  local grace
  grace=$(sed -n 's/^ *terminationGracePeriodSeconds: //p' "$work/$name.yaml" | head -1)
  pids=()
  for s in "${services[@]}"; do
    mkdir -p "$work/$name/$s"
    python3 "$checker" env "$work/$name.yaml" "$s" "/var/lib/switchboard=$work/$name/$s" \
      "/etc/switchboard/keys/public=$work/keys" "/etc/switchboard/keys/private=$work/keys" \
      "/etc/switchboard/tls=$work/tls/$s" "${rewrites[@]}" >"$work/$name/$s.env"
    mapfile -t env_vars < <(grep -v '^probe' "$work/$name/$s.env")
    env -i PATH=/usr/bin:/bin "${env_vars[@]}" "services/$s/${s}_server" \
      2>"$work/$name/$s.log" &
    pids+=($!)
  done
  for s in "${services[@]}"; do
    IFS=$'\t' read -r -a probe < <(sed -n 's/^probe\t//p' "$work/$name/$s.env")
    if tools/healthcheck/healthcheck "${probe[@]}" --wait=60s >/dev/null 2>"$work/health"; then
      pass
    else
      fail "$name: $s started from its ConfigMap fails its readiness probe" \
        "(healthcheck ${probe[*]}): $(cat "$work/health")"
      tail -5 "$work/$name/$s.log" >&2
    fi
    if grep -q "\"transport\":\"$transport\"" "$work/$name/$s.log"; then
      pass
    else
      fail "$name: $s does not log transport $transport"
    fi
  done
  # SIGTERM as Kubernetes sends it after preStop: each drains and exits 0
  # within the grace period.
  kill -TERM "${pids[@]}"
  start=$SECONDS
  for i in "${!services[@]}"; do
    code=0
    wait "${pids[$i]}" || code=$?
    if ((code == 0)); then pass; else fail "$name: ${services[$i]} exited $code on SIGTERM"; fi
  done
  if ((SECONDS - start < grace)); then
    pass
  else
    fail "$name: services took $((SECONDS - start)) s to stop, grace period $grace s"
  fi
  pids=()
}

# The default render, plaintext.
live live_plain plaintext

# mTLS: a CA and, for each service, a certificate in cert-manager's layout
# naming the service's in-cluster DNS name only, as the chart's Certificate
# does, for serving and as a client. The exec probe dials localhost, so it
# passes only by checking that name (--tls_server_name). Peers dial
# localhost here too, which the certificates do not name: calls between
# services are not part of this run.
mkdir -p "$work/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=chart test CA" -keyout "$work/tls/ca.key" -out "$work/tls/ca.crt" 2>/dev/null
for s in "${services[@]}"; do
  mkdir -p "$work/tls/$s"
  cp "$work/tls/ca.crt" "$work/tls/$s/ca.crt"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$s" \
    -keyout "$work/tls/$s/tls.key" -out "$work/tls/$s.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth,clientAuth" \
    "subjectAltName=DNS:sb-switchboard-$s.desk.svc.cluster.local" \
    >"$work/tls/$s.ext"
  openssl x509 -req -in "$work/tls/$s.csr" -CA "$work/tls/ca.crt" -CAkey "$work/tls/ca.key" \
    -CAcreateserial -days 2 -extfile "$work/tls/$s.ext" -out "$work/tls/$s/tls.crt" 2>/dev/null
done
live live_mtls mtls --set tls.enabled=true --set tls.requireClientCert=true

echo "chart: $((checks - failures)) passed, $failures failed"
((failures == 0))
