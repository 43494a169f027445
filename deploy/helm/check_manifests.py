"""Checks manifests rendered from deploy/helm/switchboard against the binaries.

  python3 check_manifests.py check MANIFESTS.yaml HELP_DIR
  python3 check_manifests.py env MANIFESTS.yaml SERVICE FROM=TO ...

`check`: HELP_DIR holds each binary's --help output (<service>.txt and
healthcheck.txt). Prints one line per problem and exits 1 if there is any.
`env`: prints the SERVICE container's environment (its ConfigMap), one
NAME=VALUE a line, each value with prefix FROM replaced by TO, so that a test
can start the binary as the pod would; then a line "probe<TAB>FLAGS", its
readiness probe as healthcheck flags separated by tabs (files moved too).

Every Deployment of the six services must run its binary with flags that
binary has (its ConfigMap's SWITCHBOARD_<SERVICE>_<FLAG> variables and
secret-fed ones), expose the ports its flags set, probe grpc.health.v1 on
that port for one service name (chart_test.sh checks that the running binary
reports it SERVING), or run healthcheck with its
real flags where TLS is on), have resources, mount every file a flag names,
and stop within a grace period longer than the drain. Each service also has a
headless Service on the same ports and a PodDisruptionBudget selecting its
pods, and the `helm test` pod checks every service by its Service's name
with healthcheck's real flags.
"""

import os
import re
import sys

import yaml

SERVICES = ["sessions", "routing", "bot", "presence", "identity", "feedback"]
# Seconds a server may spend after its drain deadline: the outbox relay's
# flush (relay_flush_deadline in every services/*/main.cc).
RELAY_FLUSH_SECONDS = 5
# Flags the chart renders for a store another branch adds (issue 14 item 1):
# accepted while a binary lacks them, checked like any other once it has them.
PENDING_FLAGS = {"database"}

problems = []


def problem(text):
    problems.append(text)


def help_flags(path):
    """Flag name -> program-specific environment variable, from --help."""
    flags = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"  --([a-z0-9_]+)  .*; env (SWITCHBOARD_[A-Z0-9_]+) or ", line)
            if m:
                flags[m.group(1)] = m.group(2)
    return flags


def duration_seconds(text):
    total = 0.0
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    for number, unit in re.findall(r"([0-9.]+)(ms|h|m|s)", text):
        total += float(number) * units[unit]
    return total


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def load(manifests_path):
    with open(manifests_path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    return by_kind


def rewrite(value, rewrites):
    for pair in rewrites:
        old, new = pair.split("=", 1)
        if value.startswith(old):
            return new + value[len(old):]
    return value


def print_env(by_kind, service, rewrites):
    deployment = next(d for n, d in by_kind["Deployment"].items() if n.endswith("-" + service))
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    for source in c.get("envFrom", []):
        data = by_kind["ConfigMap"][source["configMapRef"]["name"]].get("data", {})
        for name, value in sorted(data.items()):
            print(f"{name}={rewrite(value, rewrites)}")
    # The readiness probe as healthcheck flags: what the kubelet's gRPC probe
    # asks, or the exec probe's own command with its files moved.
    probe = c["readinessProbe"]
    if "grpc" in probe:
        args = [f"--address=localhost:{probe['grpc']['port']}",
                f"--service={probe['grpc']['service']}"]
    else:
        args = []
        for arg in probe["exec"]["command"][1:]:
            flag, value = arg.split("=", 1)
            args.append(f"{flag}={rewrite(value, rewrites)}")
    print("probe\t" + "\t".join(args))


def main():
    if sys.argv[1] == "env":
        print_env(load(sys.argv[2]), sys.argv[3], sys.argv[4:])
        return 0
    manifests_path, help_dir = sys.argv[2:4]
    by_kind = load(manifests_path)
    healthcheck_flags = help_flags(os.path.join(help_dir, "healthcheck.txt"))
    secrets = by_kind.get("Secret", {})
    config_maps = by_kind.get("ConfigMap", {})

    deployments = by_kind.get("Deployment", {})
    if len(deployments) != len(SERVICES):
        problem(f"{len(deployments)} Deployments, want {len(SERVICES)}: {sorted(deployments)}")

    for service in SERVICES:
        flags = help_flags(os.path.join(help_dir, f"{service}.txt"))
        env_to_flag = {env: flag for flag, env in flags.items()}
        for flag in PENDING_FLAGS - set(flags):
            env_to_flag[f"SWITCHBOARD_{service.upper()}_{flag.upper()}"] = flag
        health_name = f"switchboard.{service}.v1.{service.capitalize()}Service"
        deployment = next((d for n, d in deployments.items() if n.endswith("-" + service)), None)
        if deployment is None:
            problem(f"{service}: no Deployment")
            continue
        name = deployment["metadata"]["name"]
        where = f"Deployment {name}"
        pod = deployment["spec"]["template"]
        pod_labels = pod["metadata"].get("labels", {})
        if not matches(deployment["spec"]["selector"]["matchLabels"], pod_labels):
            problem(f"{where}: selector does not match its pod labels")
        spec = pod["spec"]
        if spec.get("enableServiceLinks", True):
            problem(f"{where}: enableServiceLinks must be false (SWITCHBOARD_*_PORT=tcp://...)")
        containers = spec["containers"]
        if len(containers) != 1:
            problem(f"{where}: {len(containers)} containers, want 1")
            continue
        c = containers[0]
        if c.get("command") != [f"/usr/local/bin/{service}_server"]:
            problem(f"{where}: command {c.get('command')}, want /usr/local/bin/{service}_server")

        # The flags, from the ConfigMap and secret-fed variables.
        values = {}
        for source in c.get("envFrom", []):
            ref = source.get("configMapRef", {}).get("name")
            cm = config_maps.get(ref)
            if cm is None:
                problem(f"{where}: envFrom names ConfigMap {ref}, not rendered")
                continue
            values.update(cm.get("data", {}))
        secret_fed = set()
        for entry in c.get("env", []):
            if entry["name"].startswith("SWITCHBOARD_"):
                secret_fed.add(entry["name"])
                values.setdefault(entry["name"], None)
            elif entry["name"] == "POD_IP":
                # For --advertise_address=$(POD_IP):port (leader and standbys).
                if entry.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "status.podIP":
                    problem(f"{where}: env POD_IP is not the pod's status.podIP")
            elif entry["name"] != "PGPASSWORD":
                problem(f"{where}: env {entry['name']} is neither a flag, PGPASSWORD nor POD_IP")
        flag_values = {}
        for env, value in values.items():
            flag = env_to_flag.get(env)
            if flag is None:
                problem(f"{where}: {env} is not a flag of {service}_server "
                        f"(its --help names SWITCHBOARD_{service.upper()}_<FLAG>)")
                continue
            flag_values[flag] = value
        # Arguments only repeat a ConfigMap flag, as --flag=$(ITS_VARIABLE),
        # so that a binary without that flag refuses to start.
        for arg in c.get("args", []):
            m = re.fullmatch(r"--([a-z0-9_]+)=\$\((SWITCHBOARD_[A-Z0-9_]+)\)", arg)
            if not m or env_to_flag.get(m.group(2)) != m.group(1) or m.group(2) not in values:
                problem(f"{where}: argument {arg} is not --flag=$(ITS_VARIABLE) of a "
                        "ConfigMap flag")
        if flag_values.get("database") and not any(
                a.startswith("--database=") for a in c.get("args", [])):
            problem(f"{where}: --database only in the environment: a binary without the "
                    "flag would ignore it and keep a SQLite file per replica")
        for flag in PENDING_FLAGS & set(flag_values) - set(flags):
            print(f"note: {service}_server has no --{flag} yet; the chart renders it for "
                  "the PostgreSQL store (issue 14 item 1)")

        port = int(flag_values.get("port", "0"))
        metrics_port = int(flag_values.get("metrics_port", "0"))
        if not port or not metrics_port:
            problem(f"{where}: port and metrics_port must be set explicitly")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        if ports != {"grpc": port, "metrics": metrics_port}:
            problem(f"{where}: container ports {ports}, flags say grpc {port}, "
                    f"metrics {metrics_port}")

        # Probes: grpc.health.v1 on the gRPC port for the registered service;
        # startup and liveness may instead fetch /metrics (a standby serves
        # it, not gRPC), readiness never.
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = c.get(kind)
            if not probe:
                problem(f"{where}: no {kind}")
                continue
            if "httpGet" in probe:
                if kind == "readinessProbe":
                    problem(f"{where}: readinessProbe fetches /metrics, which a standby serves too")
                if probe["httpGet"].get("path") != "/metrics" or probe["httpGet"].get("port") not in (
                        "metrics", metrics_port):
                    problem(f"{where}: {kind} gets {probe['httpGet']}, want /metrics on "
                            f"--metrics_port={metrics_port}")
            elif "grpc" in probe:
                if probe["grpc"].get("port") != port:
                    problem(f"{where}: {kind} on port {probe['grpc'].get('port')}, "
                            f"flag --port={port}")
                if probe["grpc"].get("service") != health_name:
                    problem(f"{where}: {kind} asks for {probe['grpc'].get('service')}, "
                            f"the server reports {health_name}")
                if flag_values.get("tls_cert_file"):
                    problem(f"{where}: {kind} is Kubernetes' plaintext gRPC probe on a TLS port")
            elif "exec" in probe:
                command = probe["exec"]["command"]
                if command[0] != "/usr/local/bin/healthcheck":
                    problem(f"{where}: {kind} runs {command[0]}")
                args = dict(a[2:].split("=", 1) for a in command[1:])
                for flag in args:
                    if flag not in healthcheck_flags:
                        problem(f"{where}: {kind}: healthcheck has no flag --{flag}")
                if args.get("address") != f"localhost:{port}":
                    problem(f"{where}: {kind} checks {args.get('address')}, flag --port={port}")
                if args.get("service") != health_name:
                    problem(f"{where}: {kind} asks for {args.get('service')}, "
                            f"the server reports {health_name}")
                if flag_values.get("tls_cert_file") and "tls_ca_file" not in args:
                    problem(f"{where}: {kind} speaks plaintext to a TLS port")
                if (flag_values.get("tls_require_client_cert") == "true"
                        and "tls_cert_file" not in args):
                    problem(f"{where}: {kind} has no client certificate for an mTLS port")
                if duration_seconds(args.get("timeout", "2s")) >= probe.get("timeoutSeconds", 1):
                    problem(f"{where}: {kind}: healthcheck --timeout not below timeoutSeconds")
            else:
                problem(f"{where}: {kind} is neither grpc nor exec healthcheck")

        resources = c.get("resources", {})
        for what in ("cpu", "memory"):
            if what not in resources.get("requests", {}):
                problem(f"{where}: no {what} request")
        if "memory" not in resources.get("limits", {}):
            problem(f"{where}: no memory limit")

        # Grace period: preStop sleep, then the drain, then the relay flush.
        drain = duration_seconds(flag_values.get("drain_deadline") or "10s")
        pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        sleep = float(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0.0
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if grace <= sleep + drain + RELAY_FLUSH_SECONDS:
            problem(f"{where}: terminationGracePeriodSeconds {grace} <= preStop {sleep} + "
                    f"drain {drain} + flush {RELAY_FLUSH_SECONDS}")

        annotations = pod["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") == "true":
            if annotations.get("prometheus.io/port") != str(metrics_port):
                problem(f"{where}: prometheus.io/port {annotations.get('prometheus.io/port')}, "
                        f"flag --metrics_port={metrics_port}")

        # Every file a flag names lies in a mounted volume, and a Secret the
        # chart makes holds it.
        mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for flag, value in flag_values.items():
            if not isinstance(value, str) or not value.startswith("/"):
                continue
            holder = [n for n, path in mounts.items()
                      if value == path or value.startswith(path + "/")]
            if not holder:
                problem(f"{where}: --{flag}={value} is in no mounted volume")
                continue
            volume = volumes.get(holder[0], {})
            secret_name = volume.get("secret", {}).get("secretName")
            file = os.path.relpath(value, mounts[holder[0]])
            if secret_name in secrets and file not in secrets[secret_name].get("data", {}):
                problem(f"{where}: --{flag}: Secret {secret_name} has no {file}")
            cm_name = volume.get("configMap", {}).get("name")
            if cm_name and file not in config_maps.get(cm_name, {}).get("data", {}):
                problem(f"{where}: --{flag}: ConfigMap {cm_name} has no {file}")
        if spec.get("securityContext", {}).get("runAsNonRoot") is not True:
            problem(f"{where}: pods must run as non-root")

        # A headless Service on the same ports, and a PDB.
        svc = by_kind.get("Service", {}).get(name)
        if svc is None:
            problem(f"{service}: no Service {name}")
        else:
            if svc["spec"].get("clusterIP") != "None":
                problem(f"Service {name}: not headless (clusterIP: None)")
            if not matches(svc["spec"]["selector"], pod_labels):
                problem(f"Service {name}: selector does not match {where}'s pods")
            svc_ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
            if svc_ports != {"grpc": port, "metrics": metrics_port}:
                problem(f"Service {name}: ports {svc_ports}, flags say {port}/{metrics_port}")
        pdb = by_kind.get("PodDisruptionBudget", {}).get(name)
        if pdb is None:
            problem(f"{service}: no PodDisruptionBudget {name}")
        elif not matches(pdb["spec"]["selector"]["matchLabels"], pod_labels):
            problem(f"PodDisruptionBudget {name}: selector does not match {where}'s pods")

        # Peers are dialed by DNS name, balanced over every replica.
        for flag, value in flag_values.items():
            if flag.endswith("_address") and value:
                peer = re.fullmatch(
                    r"dns:///([a-z0-9-]+)\.[a-z0-9-]+\.svc\.[a-z0-9.-]+:(\d+)", value)
                if not peer:
                    problem(f"{where}: --{flag}={value} is not a dns:/// name of a Service")
                    continue
                target = by_kind.get("Service", {}).get(peer.group(1))
                target_ports = [p["port"] for p in target["spec"]["ports"]] if target else []
                if int(peer.group(2)) not in target_ports:
                    problem(f"{where}: --{flag}={value} names no rendered Service port")

    # helm test: one healthcheck per service, by the name peers dial, asking
    # for the service the Deployment's probes ask for.
    tests = [p for p in by_kind.get("Pod", {}).values()
             if p["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    if len(tests) != 1:
        problem(f"{len(tests)} helm test pods, want 1")
    for pod in tests:
        script = pod["spec"]["containers"][0]["command"][-1]
        checked = set()
        for line in script.splitlines():
            words = line.split()
            if not words:
                continue
            if words[0] != "/usr/local/bin/healthcheck":
                problem(f"helm test runs {words[0]}")
                continue
            args = dict(w[2:].split("=", 1) for w in words[1:])
            for flag in args:
                if flag not in healthcheck_flags:
                    problem(f"helm test: healthcheck has no flag --{flag}")
            host, _, port = args.get("address", "").rpartition(":")
            svc = by_kind.get("Service", {}).get(host.split(".")[0])
            if svc is None or int(port or 0) not in [p["port"] for p in svc["spec"]["ports"]]:
                problem(f"helm test: --address={args.get('address')} names no rendered Service")
                continue
            checked.add(args.get("service"))
        want = {f"switchboard.{s}.v1.{s.capitalize()}Service" for s in SERVICES}
        if checked != want:
            problem(f"helm test checks {sorted(checked)}, want {sorted(want)}")

    for monitor in by_kind.get("PodMonitor", {}).values():
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            if endpoint.get("port") != "metrics":
                problem(f"PodMonitor: endpoint port {endpoint.get('port')}, "
                        "containers name it metrics")

    for p in problems:
        print("FAIL:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
