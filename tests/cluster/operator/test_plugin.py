"""``kubectl traderbot`` on a real API server, run as a user runs it: a subprocess.

Every command runs against the local control plane with the operator running
for the test's namespace (kwok's fake nodes: pods turn Ready, backup Jobs end as
the kwok stages say, and no kubelet serves logs). One test also goes through
kubectl's own plugin lookup (``kubectl traderbot`` with the script on PATH).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import yaml
from lightkube import Client
from lightkube.codecs import from_dict
from lightkube.resources.core_v1 import Pod, Secret

from cluster.operator.runner import OperatorRunner
from cluster.operator.test_backups import KWOK_FAIL_LABEL
from cluster.operator.test_operator import INSTANCE, _bot, _create_bot, _get, _wait_phase
from support.kube import ClusterUnderTest
from traderbot_devtools import Binaries
from traderbot_operator.kube import TraderBotBackupResource, TraderBotRestoreResource
from traderbot_operator.plugin.bundle import REDACTED

SCRIPT = Path(sys.executable).parent / "kubectl-traderbot"


def plugin(
    cluster: ClusterUnderTest, namespace: str, *args: str, timeout: float = 150
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script as a user would, with this cluster's kubeconfig."""
    return subprocess.run(
        [str(SCRIPT), "--kubeconfig", str(cluster.kubeconfig), "-n", namespace, *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def _ready_bot(kube: Client, namespace: str, name: str = "alpha") -> dict[str, Any]:
    _create_bot(kube, namespace, name)
    return _wait_phase(kube, namespace, name, "Ready")


def _pod_names(kube: Client, namespace: str, bot: str, component: str) -> set[str]:
    labels: dict[str, Any] = {INSTANCE: bot, "app.kubernetes.io/component": component}
    pods = kube.list(Pod, namespace=namespace, labels=labels)
    return {str(p.metadata.name) for p in pods if p.metadata}


def test_status_as_kubectl_traderbot_shows_phase_pods_backups_and_unknown_trading(
    kube: Client, namespace: str, operator: OperatorRunner, cluster: ClusterUnderTest
) -> None:
    _ready_bot(kube, namespace)
    ok(plugin(cluster, namespace, "backup", "alpha", "--name", "alpha-first", "--wait"))

    # Through kubectl's plugin lookup, with the context's namespace as the default.
    kubectl = Binaries.find().kubectl
    assert kubectl is not None
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for context in config["contexts"]:
        context["context"]["namespace"] = namespace
    own = cluster.workdir / f"kubeconfig-{namespace}"
    own.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{SCRIPT.parent}{os.pathsep}{os.environ['PATH']}",
           "KUBECONFIG": str(own)}  # fmt: skip
    human = ok(subprocess.run(
        [str(kubectl), "traderbot", "status", "alpha"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    ))  # fmt: skip
    assert f"TraderBot {namespace}/alpha" in human
    assert "Phase:     Ready" in human
    # NB: kwok's API pods serve nothing: the operator's read fails, so the line says
    # unknown until the first read and the read's error after it.
    (trading,) = [line for line in human.splitlines() if line.startswith("  Trading:")]
    assert "unknown" in trading or "error" in trading, trading
    api_pods = _pod_names(kube, namespace, "alpha", "api")
    assert api_pods
    assert all(pod in human for pod in api_pods)
    assert "alpha-first" in human
    assert "Completed" in human

    data = json.loads(ok(plugin(cluster, namespace, "status", "alpha", "-o", "json")))
    assert (data["name"], data["namespace"], data["phase"]) == ("alpha", namespace, "Ready")
    # status.trading as the operator wrote it: none before its first read, then the
    # read's error (kwok's API pods serve nothing).
    assert data["trading"] is None or "error" in data["trading"], data["trading"]
    by_component = {c["name"]: {p["name"] for p in c["pods"]} for c in data["components"]}
    assert by_component == {
        "api": api_pods,
        "database": _pod_names(kube, namespace, "alpha", "database"),
        "redis": _pod_names(kube, namespace, "alpha", "cache"),
        "backup": _pod_names(kube, namespace, "alpha", "backup"),
    }
    assert by_component["database"] == {"alpha-db-0"}
    assert {c["type"]: c["status"] for c in data["conditions"]}["Ready"] == "True"
    assert [r["name"] for r in data["backups"]["runs"]] == ["alpha-first"]
    assert data["backups"]["runs"][0]["phase"] == "Completed"
    assert data["version"]["current"] == _bot(kube, namespace, "alpha")["status"]["version"]

    # -o yaml says the same; a bot that does not exist is an error naming it.
    assert yaml.safe_load(ok(plugin(cluster, namespace, "-o", "yaml", "status", "alpha"))) == data
    missing = plugin(cluster, namespace, "status", "nobody")
    assert missing.returncode == 1
    assert f"TraderBot {namespace}/nobody not found" in missing.stderr


def test_backup_waits_for_the_outcome_and_exits_1_when_it_failed(
    kube: Client, namespace: str, operator: OperatorRunner, cluster: ClusterUnderTest
) -> None:
    _ready_bot(kube, namespace)
    done = plugin(cluster, namespace, "backup", "alpha", "--wait", "--timeout", "90s")
    name = ok(done).split()[0].removeprefix("traderbotbackup.traderbot.dev/")
    assert name.startswith("alpha-manual-")
    assert "Completed" in done.stdout
    assert "location /backups/" in done.stdout
    record = _get(kube, TraderBotBackupResource, name, namespace)
    assert record["spec"] == {"botName": "alpha", "database": True, "redis": True}
    assert record["status"]["phase"] == "Completed"

    failed = plugin(cluster, namespace, "-o", "json", "backup", "alpha", "--no-redis",
                    "--label", f"{KWOK_FAIL_LABEL}=true", "--wait", "--timeout", "90s")  # fmt: skip
    assert failed.returncode == 1, failed
    body = json.loads(failed.stdout)
    assert body["status"]["phase"] == "Failed"
    assert body["spec"]["redis"] is False
    assert "BackoffLimitExceeded" in body["status"]["error"]

    # Without --wait it only creates; of a bot that does not exist, nothing is created.
    created = ok(plugin(cluster, namespace, "backup", "alpha", "--name", "alpha-later"))
    assert created.strip() == "traderbotbackup.traderbot.dev/alpha-later created"
    refused = plugin(cluster, namespace, "backup", "nobody", "--name", "nobody-now")
    assert refused.returncode == 1
    assert "nobody not found" in refused.stderr
    found = kube.list(TraderBotBackupResource, namespace=namespace)
    names = {b.metadata.name for b in found if b.metadata}
    assert "nobody-now" not in names
    assert "alpha-later" in names


def test_restore_creates_a_traderbotrestore_and_waits_until_the_bot_is_back(
    kube: Client, namespace: str, operator: OperatorRunner, cluster: ClusterUnderTest
) -> None:
    _ready_bot(kube, namespace)
    ok(plugin(cluster, namespace, "backup", "alpha", "--name", "nightly", "--wait"))
    restored = plugin(cluster, namespace, "restore", "alpha", "--backup", "nightly",
                      "--name", "undo", "--wait", "--timeout", "120s")  # fmt: skip
    assert "traderbotrestore.traderbot.dev/undo Completed" in ok(restored)
    record = _get(kube, TraderBotRestoreResource, "undo", namespace)
    assert record["spec"] == {"botName": "alpha", "backupName": "nightly", "what": "database"}
    _wait_phase(kube, namespace, "alpha", "Ready")

    # A backup that does not exist: the operator refuses it, the plugin exits 1 with why.
    refused = plugin(cluster, namespace, "restore", "alpha", "--backup", "gone", "--wait",
                     "--timeout", "60s")  # fmt: skip
    assert refused.returncode == 1
    assert "Failed" in refused.stdout
    assert "gone" in refused.stdout


def test_hibernate_and_resume_patch_only_spec_hibernate(
    kube: Client, namespace: str, operator: OperatorRunner, cluster: ClusterUnderTest
) -> None:
    _ready_bot(kube, namespace)
    before = _bot(kube, namespace, "alpha")["spec"]
    said = ok(plugin(cluster, namespace, "hibernate", "alpha"))
    assert "alpha hibernating" in said
    asleep = _wait_phase(kube, namespace, "alpha", "Hibernated")
    assert asleep["spec"] == {**before, "hibernate": True}
    data = json.loads(ok(plugin(cluster, namespace, "status", "alpha", "-o", "json")))
    assert data["phase"] == "Hibernated"
    assert data["hibernate"] is True
    assert all(c["pods"] == [] for c in data["components"])
    assert "no pods" in ok(plugin(cluster, namespace, "status", "alpha"))

    patched = json.loads(ok(plugin(cluster, namespace, "resume", "alpha", "-o", "json")))
    assert patched["spec"]["hibernate"] is False
    _wait_phase(kube, namespace, "alpha", "Ready")
    assert _bot(kube, namespace, "alpha")["spec"] == {**before, "hibernate": False}


def test_logs_select_the_components_pods_and_say_when_no_kubelet_serves_them(
    kube: Client, namespace: str, operator: OperatorRunner, cluster: ClusterUnderTest
) -> None:
    _ready_bot(kube, namespace)
    api = plugin(cluster, namespace, "logs", "alpha")
    assert api.returncode == 1  # kwok's nodes have no kubelet: no log can be read
    [api_pod] = _pod_names(kube, namespace, "alpha", "api")
    assert f"logs of {api_pod} (trader-api) are not available" in api.stderr

    redis = plugin(cluster, namespace, "logs", "alpha", "--component", "redis", "-o", "json")
    assert redis.returncode == 1
    entries = json.loads(redis.stdout)
    assert {e["pod"] for e in entries} == {"alpha-redis-0"}
    assert all(e["log"] is None and e["error"] for e in entries)

    everything = json.loads(plugin(cluster, namespace, "logs", "alpha", "--component", "all",
                                   "-o", "json").stdout)  # fmt: skip
    assert {e["pod"] for e in everything} == {api_pod, "alpha-db-0", "alpha-redis-0"}

    none = plugin(cluster, namespace, "logs", "alpha", "--component", "backup")
    assert none.returncode == 1
    assert "no backup pods of bot" in none.stderr


def _secret_values(kube: Client, namespace: str) -> set[str]:
    """Every secret value in the namespace's Secrets, base64 and decoded.

    NB: values shorter than 12 characters (the database user ``trader``) are names,
    not secrets, and appear in the bundle legitimately (the pods' env says who).
    """
    values: set[str] = set()
    for secret in kube.list(Secret, namespace=namespace):
        for encoded in (secret.data or {}).values():
            decoded = base64.b64decode(encoded).decode(errors="replace")
            if len(decoded) >= 12:
                values |= {encoded, decoded}
    return values


def test_report_bundles_crs_children_events_and_logs_with_no_secret_value(
    kube: Client,
    namespace: str,
    operator: OperatorRunner,
    cluster: ClusterUnderTest,
    tmp_path: Path,
) -> None:
    _ready_bot(kube, namespace)
    ok(plugin(cluster, namespace, "backup", "alpha", "--name", "alpha-now", "--wait"))
    user_value = "user-token-" + base64.b32encode(os.urandom(10)).decode()
    applied = {"apiVersion": "v1", "kind": "Secret", "stringData": {"token": user_value}}
    kube.create(from_dict({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "alpha-extra", "namespace": namespace, "labels": {INSTANCE: "alpha"},
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                                     json.dumps(applied)}},
        "stringData": {"token": user_value},
    }))  # fmt: skip
    # An operator pod as the chart labels it (here in the test's namespace; kwok: no log).
    kube.create(from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "traderbot-operator-abc", "namespace": namespace,
                     "labels": {"app.kubernetes.io/name": "traderbot-operator",
                                "app.kubernetes.io/component": "operator"}},
        "spec": {"containers": [{"name": "operator", "image": "operator:test"}]},
    }))  # fmt: skip

    target = tmp_path / "bundle.tar.gz"
    summary = json.loads(ok(plugin(cluster, namespace, "report", "alpha", "--to", str(target),
                                   "--operator-namespace", namespace, "-o", "json")))  # fmt: skip
    assert summary["path"] == str(target)
    # kwok serves no log; a cluster without the Prometheus Operator has no ServiceMonitor
    # to miss, and the operator pod was found.
    unavailable = [f for f in summary["files"] if f.endswith(".unavailable.txt")]
    assert summary["problems"] == [
        f"{len(unavailable)} of {len(unavailable)} container logs could not be read "
        "(each one's reason: its *.unavailable.txt)"
    ]
    with tarfile.open(target) as tar:
        files = {
            m.name.split("/", 1)[1]: tar.extractfile(m).read().decode()  # type: ignore[union-attr]
            for m in tar.getmembers() if m.isfile()
        }  # fmt: skip
    assert sorted(files) == summary["files"]
    for path in ("objects/TraderBot/alpha.yaml", "objects/TraderBotBackup/alpha-now.yaml",
                 "objects/Deployment/alpha-api.yaml", "objects/StatefulSet/alpha-db.yaml",
                 "objects/StatefulSet/alpha-redis.yaml", "objects/CronJob/alpha-backup.yaml",
                 "objects/Job/alpha-now.yaml", "objects/Pod/alpha-db-0.yaml",
                 "objects/Secret/alpha-db-credentials.yaml", "objects/Secret/alpha-extra.yaml",
                 "events.yaml", "summary.yaml"):  # fmt: skip
        assert path in files, path
    events = yaml.safe_load(files["events.yaml"])
    assert any(e["involvedObject"]["name"] == "alpha-now" for e in events)
    assert "logs/alpha-db-0.timescaledb.unavailable.txt" in files
    assert "operator/traderbot-operator-abc.operator.unavailable.txt" in files

    extra = yaml.safe_load(files["objects/Secret/alpha-extra.yaml"])
    assert extra["data"] == {"token": REDACTED}
    credentials = yaml.safe_load(files["objects/Secret/alpha-db-credentials.yaml"])
    assert credentials["data"]
    assert set(credentials["data"].values()) == {REDACTED}
    values = _secret_values(kube, namespace)
    assert user_value in values
    assert len(values) > 4
    leaked = {v for v in values for path, text in files.items() if v in text}
    assert not leaked, "secret values in the bundle"

    # A folder instead of a tarball: the same files.
    folder = tmp_path / "bundle"
    ok(plugin(cluster, namespace, "report", "alpha", "--to", str(folder),
              "--operator-namespace", namespace))  # fmt: skip
    assert {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} == set(files)
