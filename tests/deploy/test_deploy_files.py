"""The deployment files under deploy/, checked as far as this machine can: there is no Docker engine and no
Kubernetes here, so compose and the manifests are parsed and cross-checked, the configs they carry are validated
by Bastion's own loader, nginx checks its config (`nginx -t`) and systemd its unit (`systemd-analyze verify`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bastion.config import load_config, parse_config
from tests.peers import ROOT

DEPLOY = ROOT / "deploy"
ENV = {
    "BASTION_REPLICA": "bastion-1",
    "BASTION_SESSION_SECRET": "0" * 64,
    "AUDIT_DATABASE_URL": "postgresql://bastion:pw@postgres:5432/bastion",
}


def manifests() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all((DEPLOY / "k8s/bastion.yaml").read_text())}


def test_compose_runs_two_replicas_behind_nginx_with_redis_and_postgres() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "postgres", "bastion-1", "bastion-2", "nginx"}
    replicas = [services["bastion-1"], services["bastion-2"]]
    assert [r["environment"]["BASTION_REPLICA"] for r in replicas] == ["bastion-1", "bastion-2"]
    for replica in replicas:
        assert set(replica["environment"]) == set(ENV)
        assert replica["depends_on"] == {
            "redis": {"condition": "service_healthy"},
            "postgres": {"condition": "service_healthy"},
        }
        assert all("healthcheck" in services[s] for s in ("redis", "postgres"))
        source, target, _ = replica["volumes"][0].split(":")
        assert (DEPLOY / source).is_file() and target == "/etc/bastion/bastion.yaml"
        assert (DEPLOY / replica["build"]["context"] / replica["build"]["dockerfile"]).is_file()
    source, target, _ = services["nginx"]["volumes"][0].split(":")
    assert (DEPLOY / source).is_file() and target.startswith("/etc/nginx/conf.d/")
    upstreams = re.findall(r"server (bastion-\d+):8765", (DEPLOY / source).read_text())
    assert set(upstreams) == {"bastion-1", "bastion-2"}


def test_the_dockerfile_copies_what_exists_and_serves_the_config_compose_mounts() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.MULTILINE):
        assert all((ROOT / path).exists() for path in copied.split()), copied
    assert '"--config", "/etc/bastion/bastion.yaml"' in dockerfile and "/healthz" in dockerfile


def test_the_cluster_config_and_the_k8s_configmap_are_the_same_valid_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    load_config(DEPLOY / "cluster.yaml")  # the file as `bastion serve --config` reads it
    shipped = parse_config(yaml.safe_load((DEPLOY / "cluster.yaml").read_text()))
    assert shipped.state.backend == "redis" and shipped.cluster.session_secret is not None
    assert shipped.cluster.replica_id == "bastion-1" and shipped.auth.enabled
    assert [s.type for s in shipped.audit.sinks] == ["postgres"]
    in_k8s = parse_config(yaml.safe_load(manifests()["ConfigMap"]["data"]["bastion.yaml"]))
    assert in_k8s.model_dump(mode="json") == shipped.model_dump(mode="json")


def test_the_k8s_deployment_probes_health_drains_and_names_each_replica() -> None:
    kinds = manifests()
    assert set(kinds) == {"Secret", "ConfigMap", "Deployment", "Service", "Ingress", "PodDisruptionBudget"}
    deployment = kinds["Deployment"]["spec"]
    assert deployment["replicas"] >= 2
    pod = deployment["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["env"][0] == {
        "name": "BASTION_REPLICA",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
    }
    assert container["envFrom"] == [{"secretRef": {"name": "bastion"}}]
    assert set(kinds["Secret"]["stringData"]) == set(ENV) - {"BASTION_REPLICA"}
    assert (
        container["volumeMounts"][0]["mountPath"] == "/etc/bastion"
        and "bastion.yaml" in kinds["ConfigMap"]["data"]
    )
    assert pod["terminationGracePeriodSeconds"] > 5 + 10 + 10  # preStop + drain + uvicorn's grace
    ingress = kinds["Ingress"]["metadata"]["annotations"]
    assert ingress["nginx.ingress.kubernetes.io/upstream-hash-by"] == "$http_mcp_session_id"
    assert ingress["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"


@pytest.mark.integration
def test_the_shipped_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    nginx = next((p for p in ("/usr/sbin/nginx", shutil.which("nginx")) if p and Path(p).exists()), None)
    if nginx is None:
        pytest.fail("nginx is not installed (`make test` installs it: scripts/setup-system.sh)")
    snippet = (DEPLOY / "nginx/bastion.conf").read_text()
    snippet = re.sub(r"server bastion-(\d+):8765", r"server 127.0.0.\1:8765", snippet)  # resolvable names
    snippet = snippet.replace("listen 8765;", "listen 127.0.0.1:18765;")
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"error_log {tmp_path}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n"
        f"  client_body_temp_path {tmp_path}/body;\n  proxy_temp_path {tmp_path}/proxy;\n{snippet}\n}}\n"
    )
    checked = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-g", f"pid {tmp_path}/nginx.pid;"],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.integration
def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is not installed (`make test` installs it: scripts/setup-system.sh)")
    bastion = shutil.which("bastion") or str(ROOT / ".venv/bin/bastion")
    unit = tmp_path / "bastion.service"  # the unit as shipped, with an executable that exists here
    unit.write_text(
        (DEPLOY / "systemd/bastion.service").read_text().replace("/opt/bastion/bin/bastion", bastion)
    )
    checked = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
