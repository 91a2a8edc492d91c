"""The Kubernetes manifests in deploy/kubernetes hang together with the binary: the
ConfigMap's config, with the environment the StatefulSet gives a pod, passes `temper config
check` and names the pod; ports, probes, services and the schema Job agree with it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import tomllib
import yaml

from cluster import harness

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "temper.yaml"
POD = {"metadata.name": "temper-1", "status.podIP": "10.1.2.3"}


def load() -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


def pod_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet builds it for POD (secrets absent)."""
    env: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = re.sub(
                r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), var["value"]
            )
        elif "fieldRef" in var["valueFrom"]:
            env[var["name"]] = POD[var["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            assert var["valueFrom"]["secretKeyRef"].get("optional"), var
    return env


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def test_node_config_checks_and_names_the_pod(tmp_path: Path) -> None:
    objects = load()
    config_map = objects["ConfigMap/temper-config"]
    sts = objects["StatefulSet/temper"]
    pod = sts["spec"]["template"]
    (container,) = pod["spec"]["containers"]

    # The config file where the container's args say, from the ConfigMap's volume.
    args = container["args"]
    config_path = Path(args[args.index("--config") + 1])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(config_path.parent)]
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == "temper-config"
    local = tmp_path / config_path.name
    local.write_text(config_map["data"][config_path.name])

    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPER_")}
    env.update(pod_env(container))
    checked = subprocess.run(
        [str(harness.temper_bin()), "config", "check", "--config", str(local)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert "warning" not in checked.stderr.lower(), checked.stderr
    config = tomllib.loads(checked.stdout)
    node = config["node"]
    assert node["name"] == "temper-1"
    assert node["advertise_grpc_address"] == "10.1.2.3:7233"
    assert node["advertise_membership_address"] == "10.1.2.3:6933"
    assert config["store"]["kind"] == "cassandra"

    # Ports: the container's, the probes', the services' and the seeds' agree with the config.
    ports = {p["name"]: p for p in container["ports"]}
    assert ports["grpc"]["containerPort"] == port_of(node["grpc_address"])
    assert ports["gossip"]["containerPort"] == port_of(node["membership_address"])
    assert ports["gossip"]["protocol"] == "UDP"
    assert ports["health"]["containerPort"] == port_of(config["health"]["listen_address"])
    assert ports["metrics"]["containerPort"] == port_of(config["metrics"]["listen_address"])
    for probe, path in [
        ("livenessProbe", "/health/live"),
        ("readinessProbe", "/health/ready"),
        ("startupProbe", "/health/live"),
    ]:
        assert container[probe]["httpGet"] == {"path": path, "port": "health"}, probe
    annotations = pod["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]["containerPort"]

    headless = objects["Service/temper-headless"]
    assert sts["spec"]["serviceName"] == "temper-headless"
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    (seed,) = config["cluster"]["seeds"]
    assert seed == f"temper-headless:{ports['gossip']['containerPort']}"
    service_ports = {p["name"]: p for p in headless["spec"]["ports"]}
    assert service_ports["gossip"]["port"] == ports["gossip"]["containerPort"]
    assert service_ports["gossip"]["protocol"] == "UDP"
    labels = pod["metadata"]["labels"]
    for name in ["Service/temper-headless", "Service/temper"]:
        selector = objects[name]["spec"]["selector"]
        assert selector.items() <= labels.items(), name
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert objects["PodDisruptionBudget/temper"]["spec"]["selector"]["matchLabels"].items() <= labels.items()

    # The pod runs as the image's user.
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001


def test_schema_job_uses_the_nodes_store() -> None:
    objects = load()
    (job,) = objects["Job/temper-schema"]["spec"]["template"]["spec"]["containers"]
    args = job["args"]
    assert args[:2] == ["schema", "setup"]
    usage = subprocess.run(
        [str(harness.temper_bin()), "schema", "setup", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag in [a for a in args if a.startswith("--")]:
        assert flag in usage, flag
    env = pod_env(job)
    for name in env:
        assert f"[env: {name}" in usage, f"{name} is not read by `temper schema setup`"
    node_toml = tomllib.loads(objects["ConfigMap/temper-config"]["data"]["temper.toml"])
    cassandra = node_toml["store"]["cassandra"]
    assert env["TEMPER_STORE"] == "cassandra"
    assert env["TEMPER_CASSANDRA_CONTACT_POINTS"].split(",") == cassandra["contact_points"]
    assert env["TEMPER_CASSANDRA_KEYSPACE"] == cassandra["keyspace"]
    assert env["TEMPER_CASSANDRA_DATACENTER"] == cassandra["datacenter"]
