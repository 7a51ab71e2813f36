"""``kubectl traderbot``'s pure parts: the status report, request bodies, the bundle, the CLI.

What talks to a server is tested in tests/cluster/operator/test_plugin.py.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import tarfile
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from traderbot_operator import __version__
from traderbot_operator.desired.common import RUN_NAME_MAX_LENGTH
from traderbot_operator.kube import LISTABLE_KINDS
from traderbot_operator.plugin import bundle, cli, krew, manifests, status
from traderbot_operator.plugin.client import CHILD_RESOURCES, PluginClient, PluginError

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 1, 28, 12, 0, tzinfo=UTC)


def _pod(
    name: str,
    component: str,
    *,
    ready: bool = True,
    restarts: int = 0,
    waiting: str | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    state: dict[str, Any] = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    meta: dict[str, Any] = {
        "name": name,
        "labels": {status.INSTANCE_LABEL: "alpha", status.COMPONENT_LABEL: component},
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-28T11:59:00Z"
    return {
        "metadata": meta,
        "spec": {"nodeName": "node-1", "containers": [{"name": "main"}, {"name": "sidecar"}]},
        "status": {
            "phase": "Running",
            "startTime": "2026-01-28T09:00:00Z",
            "containerStatuses": [
                {"name": "main", "ready": ready, "restartCount": restarts, "state": state},
                {"name": "sidecar", "ready": True, "restartCount": 1, "state": {"running": {}}},
            ],
        },
    }


def _run(name: str, bot: str, started: str, **status_: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": started},
        "spec": {"botName": bot, "backupName": "nightly"},
        "status": {"startTime": started, **status_},
    }


def _bot(**status_: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "alpha", "namespace": "trading", "generation": 4},
        "spec": {"version": "0.1.1", "mode": "paper", "hibernate": False},
        "status": {
            "phase": "Ready",
            "ready": "1/1",
            "observedGeneration": 4,
            "version": "0.1.0",
            "lastBackup": {"time": "2026-01-28T03:00:10Z"},
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "AllReady",
                 "lastTransitionTime": "2026-01-28T09:00:00Z"},
                {"type": "BackupVerified", "status": "False", "reason": "VerificationFailed",
                 "message": "checksum mismatch"},
            ],
            "versionHistory": [{"version": "0.1.0", "time": "2026-01-20T10:00:00Z",
                                "outcome": "Installed"}],
            "maintenance": {"backend": "timescaledb", "jobs": [
                {"jobId": 1000, "proc": "policy_compression", "lastRunStatus": "Success"}]},
            "someFieldOfANewerOperator": {"x": 1},
            **status_,
        },
    }  # fmt: skip


# --- status -----------------------------------------------------------------------------


def test_a_pod_reads_as_kubectl_get_pods_sums_it_up() -> None:
    view = status.pod_view(_pod("alpha-api-1", "api", ready=False, restarts=3,
                                waiting="CrashLoopBackOff"))  # fmt: skip
    assert (view.status, view.ready, view.restarts, view.node) == (
        "CrashLoopBackOff",
        "1/2",
        4,
        "node-1",
    )
    assert status.pod_view(_pod("alpha-api-2", "api", deleting=True)).status == "Terminating"
    assert status.pod_view(_pod("alpha-api-3", "api")).status == "Running"


def test_pods_are_grouped_by_component_and_an_empty_component_is_still_shown() -> None:
    found = status.components([
        _pod("alpha-redis-0", "cache"), _pod("alpha-api-b", "api"), _pod("alpha-api-a", "api"),
        _pod("stranger", "something-else"),
    ])  # fmt: skip
    assert [(c.name, [p.name for p in c.pods]) for c in found] == [
        ("api", ["alpha-api-a", "alpha-api-b"]),
        ("database", []),
        ("redis", ["alpha-redis-0"]),
        ("backup", []),
    ]


def test_the_report_keeps_the_bots_runs_newest_first_and_tolerates_unknown_fields() -> None:
    backups = [
        _run("alpha-1", "alpha", "2026-01-26T03:00:00Z", phase="Completed", sizeBytes=10),
        _run("beta-1", "beta", "2026-01-28T03:00:00Z", phase="Completed"),
        _run("alpha-3", "alpha", "2026-01-28T03:00:00Z", phase="Failed", error="disk full"),
        _run("alpha-2", "alpha", "2026-01-27T03:00:00Z", phase="Completed"),
    ]
    report = status.build_status(_bot(), pods=[], backups=backups, restores=[], recent=2)
    assert [r.name for r in report.backups.runs] == ["alpha-3", "alpha-2"]
    assert report.backups.runs[0].message == "disk full"
    assert report.backups.verified is not None
    assert report.backups.verified.reason == "VerificationFailed"
    assert report.backups.healthy is None
    assert (report.version.current, report.version.desired) == ("0.1.0", "0.1.1")
    assert report.trading is None
    data = report.model_dump(mode="json", by_alias=True)
    assert data["observedGeneration"] == 4
    assert data["backups"]["lastSuccess"] == "2026-01-28T03:00:10Z"


def test_trading_state_is_unknown_when_absent_and_shown_when_the_operator_reports_it() -> None:
    absent = status.render_status(
        status.build_status(_bot(), pods=[], backups=[], restores=[]), now=NOW
    )
    assert "Trading:   unknown" in absent
    present = status.build_status(
        _bot(trading={"state": "Trading", "leader": "alpha-api-1"}), pods=[], backups=[],
        restores=[],
    )  # fmt: skip
    assert present.trading == {"state": "Trading", "leader": "alpha-api-1"}
    assert "Trading:   state=Trading, leader=alpha-api-1" in status.render_status(present, now=NOW)


def test_the_screen_has_every_section_with_aligned_columns() -> None:
    report = status.build_status(
        _bot(),
        pods=[_pod("alpha-api-1", "api"), _pod("alpha-db-0", "database")],
        backups=[_run("alpha-1", "alpha", "2026-01-28T03:00:00Z", phase="Completed")],
        restores=[_run("undo", "alpha", "2026-01-28T10:00:00Z", phase="Completed")],
    )
    screen = status.render_status(report, now=NOW)
    for heading in ("Conditions", "Components", "Version: 0.1.0 (spec 0.1.1)", "Backups:",
                    "Restores", "Maintenance"):  # fmt: skip
        assert heading in screen
    assert "Verified: False VerificationFailed: checksum mismatch" in screen
    assert "Healthy: unknown" in screen
    lines = screen.splitlines()
    header = next(line for line in lines if line.strip().startswith("COMPONENT"))
    api = next(line for line in lines if "alpha-api-1" in line)
    assert api.index("alpha-api-1") == header.index("POD")
    assert api.index("Running") == header.index("STATUS")
    assert "3h" in api  # started 09:00, now 12:00
    assert next(line for line in lines if line.strip().startswith("redis")).split()[1:3] == [
        "-",
        "no",
    ]
    assert "policy_compression" in screen


# --- request bodies ---------------------------------------------------------------------


def test_a_backup_is_built_from_the_operators_model_with_a_name_that_fits() -> None:
    body = manifests.build_backup(bot="alpha", namespace="trading", labels={"team": "quant"})
    assert body["kind"] == "TraderBotBackup"
    assert body["metadata"] == {
        "namespace": "trading", "labels": {"team": "quant"}, "generateName": "alpha-manual-",
    }  # fmt: skip
    assert body["spec"] == {"botName": "alpha", "database": True, "redis": True}
    longest = "b" * 40
    prefix = manifests.build_backup(bot=longest, namespace="t")["metadata"]["generateName"]
    assert len(prefix) + manifests.GENERATED_SUFFIX_LENGTH <= RUN_NAME_MAX_LENGTH
    named = manifests.build_backup(bot="alpha", namespace="t", name="x", redis=False)
    assert named["metadata"]["name"] == "x"
    assert "generateName" not in named["metadata"]
    assert named["spec"]["redis"] is False


def test_names_the_crd_would_refuse_are_refused_before_any_request() -> None:
    with pytest.raises(ValidationError):
        manifests.build_backup(bot="Alpha_1", namespace="t")
    with pytest.raises(ValidationError):
        manifests.build_restore(bot="alpha", namespace="t", backup="../x")


def test_restore_hibernate_and_a_runs_outcome() -> None:
    body = manifests.build_restore(bot="alpha", namespace="t", backup="nightly", what="both")
    assert body["spec"] == {"botName": "alpha", "backupName": "nightly", "what": "both"}
    assert body["metadata"]["generateName"] == "alpha-restore-"
    assert manifests.hibernate_patch(hibernate=True) == {"spec": {"hibernate": True}}
    assert manifests.hibernate_patch(hibernate=False) == {"spec": {"hibernate": False}}
    assert manifests.outcome({"status": {"phase": "Completed"}}) == "succeeded"
    assert manifests.outcome({"status": {"phase": "Failed"}}) == "failed"
    assert manifests.outcome({"status": {"phase": "StoppingApi"}}) == "running"
    assert manifests.outcome({}) == "running"


def test_log_selection_uses_the_operators_labels_and_redis_is_the_cache_component() -> None:
    assert manifests.pod_selector("alpha", "redis") == {
        "app.kubernetes.io/instance": "alpha",
        "app.kubernetes.io/managed-by": "traderbot-operator",
        "app.kubernetes.io/component": "cache",
    }
    assert "app.kubernetes.io/component" not in manifests.pod_selector("alpha", "all")
    pods = [_pod("b", "api"), _pod("a", "api")]
    assert manifests.log_targets(pods) == [("a", "main"), ("a", "sidecar"), ("b", "main"),
                                           ("b", "sidecar")]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("10m", 600), ("1h30m", 5400), ("2d", 172_800)]
)
def test_durations_read_as_kubectl_reads_them(text: str, seconds: int) -> None:
    assert manifests.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1x", "h", "1h 30m", "-5s"])
def test_a_bad_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        manifests.parse_duration(text)


# --- bundle -----------------------------------------------------------------------------

PASSWORD = secrets.token_urlsafe(24)  # generated per run, like the operator's own


def _secret() -> dict[str, Any]:
    encoded = base64.b64encode(PASSWORD.encode()).decode()
    applied = json.dumps({"kind": "Secret", "stringData": {"password": PASSWORD}})
    return {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "alpha-db-credentials",
                     "annotations": {bundle.LAST_APPLIED: applied, "team": "quant"}},
        "data": {"password": encoded, "username": base64.b64encode(b"trader").decode()},
        "stringData": {"password": PASSWORD},
    }  # fmt: skip


def test_a_secret_keeps_its_keys_and_loses_every_value() -> None:
    redacted = bundle.redact(_secret())
    assert redacted["data"] == {"password": bundle.REDACTED, "username": bundle.REDACTED}
    assert redacted["stringData"] == {"password": bundle.REDACTED}
    assert redacted["metadata"]["annotations"] == {
        bundle.LAST_APPLIED: bundle.REDACTED,
        "team": "quant",
    }
    deployment = {"kind": "Deployment", "metadata": {"name": "x"}, "data": {"a": "b"}}
    assert bundle.redact(deployment) == deployment


def _collected() -> bundle.Collected:
    return bundle.Collected(
        namespace="trading",
        bot="alpha",
        objects=[
            {"kind": "TraderBot", "metadata": {"name": "alpha"}},
            _secret(),
            {"kind": "Pod", "metadata": {"name": "alpha-api-1"}},
        ],
        events=[
            {"kind": "Event", "lastTimestamp": "2026-01-28T10:00:00Z", "reason": "Later"},
            {"kind": "Event", "lastTimestamp": "2026-01-28T09:00:00Z", "reason": "Earlier"},
        ],
        logs=[bundle.Log("trading", "alpha-api-1", "trader-api", text="{}\n"),
              bundle.Log("trading", "alpha-db-0", "db", error="HTTP 500: no kubelet")],
        operator_logs=[bundle.Log("traderbot-system", "op-1", "operator", text="started\n")],
        problems=["ServiceMonitor: not served"],
    )  # fmt: skip


def test_the_bundle_lays_out_objects_events_logs_and_a_summary_with_no_secret_value() -> None:
    files = bundle.build_bundle(_collected(), created="2026-01-28T12:00:00+00:00")
    assert sorted(files) == [
        "events.yaml",
        "logs/alpha-api-1.trader-api.log",
        "logs/alpha-db-0.db.unavailable.txt",
        "objects/Pod/alpha-api-1.yaml",
        "objects/Secret/alpha-db-credentials.yaml",
        "objects/TraderBot/alpha.yaml",
        "operator/op-1.operator.log",
        "summary.yaml",
    ]
    assert [e["reason"] for e in yaml.safe_load(files["events.yaml"])] == ["Earlier", "Later"]
    assert files["logs/alpha-db-0.db.unavailable.txt"] == "HTTP 500: no kubelet\n"
    summary = yaml.safe_load(files["summary.yaml"])
    assert summary["problems"] == ["ServiceMonitor: not served"]
    assert "logs/alpha-api-1.trader-api.log" in summary["logs"]
    encoded = base64.b64encode(PASSWORD.encode()).decode()
    assert not [p for p, text in files.items() if PASSWORD in text or encoded in text]


def test_the_bundle_is_written_as_a_tarball_or_a_folder_with_the_same_files(
    tmp_path: Path,
) -> None:
    files = bundle.build_bundle(_collected(), created="now")
    bundle.write_tarball(files, tmp_path / "b.tar.gz", root="report")
    with tarfile.open(tmp_path / "b.tar.gz") as tar:
        inside = {
            m.name: tar.extractfile(m).read().decode()  # type: ignore[union-attr]
            for m in tar.getmembers()
        }  # fmt: skip
    assert inside == {f"report/{name}": text for name, text in files.items()}
    bundle.write_folder(files, tmp_path / "folder")
    written = {
        str(p.relative_to(tmp_path / "folder")): p.read_text()
        for p in (tmp_path / "folder").rglob("*")
        if p.is_file()
    }
    assert written == files
    assert all(
        (p.stat().st_mode & 0o077) == 0 for p in (tmp_path / "folder").rglob("*") if p.is_file()
    )


def test_the_report_reads_every_kind_the_operator_lists() -> None:
    assert set(LISTABLE_KINDS) <= set(CHILD_RESOURCES)
    assert {"Secret", "Pod", "Job"} <= set(CHILD_RESOURCES)


# --- command line -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["-n", "trading", "-o", "json", "--context", "c", "status", "alpha"],
        ["status", "alpha", "-n", "trading", "-o", "json", "--context", "c"],
        ["-n", "elsewhere", "status", "alpha", "--namespace", "trading", "-o", "json",
         "--context", "c"],
    ],
)  # fmt: skip
def test_kubectl_flags_go_before_or_after_the_command(argv: list[str]) -> None:
    args = cli.build_parser().parse_args(argv)
    assert (args.command, args.bot, args.namespace, args.output, args.context) == (
        "status", "alpha", "trading", "json", "c",
    )  # fmt: skip


def test_backup_and_restore_flags() -> None:
    args = cli.build_parser().parse_args(
        ["backup", "alpha", "--wait", "--timeout", "5m", "--label", "a=b", "--label", "c="]
    )
    assert (args.wait, args.timeout, args.label, args.no_redis) == (
        True,
        300,
        [("a", "b"), ("c", "")],
        False,
    )
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["restore", "alpha"])  # --backup is required
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["logs", "alpha", "--component", "etcd"])


class FakeRuns:
    """A fake PluginClient for ``_wait``: serves a fixed sequence of a run's bodies."""

    namespace = "trading"

    def __init__(self, phases: list[str | None]) -> None:
        self.phases = phases
        self.reads = 0

    def get_run(self, kind: str, name: str) -> dict[str, Any] | None:
        phase = self.phases[min(self.reads, len(self.phases) - 1)]
        self.reads += 1
        return {"kind": kind, "metadata": {"name": name}, "status": {"phase": phase}}


def _printer() -> tuple[cli.Printer, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return cli.Printer(None, out=out, err=err), out, err


def test_waiting_reports_each_phase_once_and_stops_at_the_end() -> None:
    printer, _, err = _printer()
    fake = FakeRuns([None, "Pending", "Pending", "Running", "Completed"])
    created = {"kind": "TraderBotBackup", "metadata": {"name": "b1"}}
    sleeps: list[float] = []
    run, ended = cli._wait(
        fake,  # type: ignore[arg-type]
        created,
        timeout=60,
        printer=printer,
        sleep=sleeps.append,
    )
    assert sleeps == [cli.POLL_SECONDS] * 4
    assert ended
    assert run["status"]["phase"] == "Completed"
    assert err.getvalue().splitlines() == [
        "traderbotbackup.traderbot.dev/b1: waiting for the operator",
        "traderbotbackup.traderbot.dev/b1: Pending",
        "traderbotbackup.traderbot.dev/b1: Running",
        "traderbotbackup.traderbot.dev/b1: Completed",
    ]


def test_waiting_gives_up_at_the_timeout() -> None:
    ticks = iter(range(100))
    printer, _, _ = _printer()
    run, ended = cli._wait(
        FakeRuns(["Running"]),  # type: ignore[arg-type]
        {"kind": "TraderBotRestore", "metadata": {"name": "r"}},
        timeout=5,
        printer=printer,
        clock=lambda: float(next(ticks)),
        sleep=lambda _: None,
    )
    assert not ended
    assert run["status"]["phase"] == "Running"


def test_data_output_is_json_or_yaml_and_progress_stays_on_stderr() -> None:
    for output, load in (("json", json.loads), ("yaml", yaml.safe_load)):
        out, err = io.StringIO(), io.StringIO()
        printer = cli.Printer(output, out=out, err=err)
        printer.note("working")
        printer.result({"a": [1, 2]}, "ignored")
        assert load(out.getvalue()) == {"a": [1, 2]}
        assert err.getvalue() == "working\n"


# --- kubeconfig -------------------------------------------------------------------------


def _kubeconfig(path: Path, *, namespace: str | None) -> Path:
    context: dict[str, Any] = {"cluster": "c", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "main",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "main", "context": context},
                     {"name": "other", "context": {**context, "namespace": "paper"}}],
    }))  # fmt: skip
    return path


def test_the_namespace_comes_from_the_flag_else_the_context_else_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_ns = str(_kubeconfig(tmp_path / "a", namespace="trading"))
    without = str(_kubeconfig(tmp_path / "b", namespace=None))
    connect = PluginClient.connect
    assert connect(kubeconfig=with_ns, context=None, namespace=None).namespace == "trading"
    assert connect(kubeconfig=with_ns, context="other", namespace=None).namespace == "paper"
    assert connect(kubeconfig=with_ns, context=None, namespace="x").namespace == "x"
    assert connect(kubeconfig=without, context=None, namespace=None).namespace == "default"
    # $KUBECONFIG may list files: the first that exists is read.
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(tmp_path / "missing"), with_ns]))
    assert connect(kubeconfig=None, context=None, namespace=None).namespace == "trading"
    with pytest.raises(PluginError, match="kubeconfig"):
        connect(kubeconfig=with_ns, context="nope", namespace=None)
    with pytest.raises(PluginError, match="no usable kubeconfig"):
        connect(kubeconfig=str(tmp_path / "missing"), context=None, namespace=None)


def test_an_unreachable_api_server_is_an_error_message_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(_kubeconfig(tmp_path / "a", namespace="trading"))
    assert cli.main(["--kubeconfig", config, "status", "alpha"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: get TraderBot trading/alpha failed: cannot reach the API server")


# --- packaging --------------------------------------------------------------------------


def test_the_console_script_is_kubectl_traderbot() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kubectl-traderbot"] == "traderbot_operator.plugin.cli:main"


def test_the_krew_manifest_names_the_binary_and_the_archive_built_here() -> None:
    manifest = yaml.safe_load((ROOT / "plugins" / "traderbot.yaml").read_text())
    assert manifest["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert manifest["kind"] == "Plugin"
    assert manifest["metadata"]["name"] == "traderbot"  # `kubectl traderbot`
    spec = manifest["spec"]
    assert spec["version"] == f"v{__version__}"
    assert "pip install" in spec["caveats"]
    [platform] = spec["platforms"]
    assert platform["bin"] == krew.BINARY == "kubectl-traderbot"
    assert platform["uri"].endswith(f"/v{__version__}/{krew.archive_name()}")
    assert platform["sha256"] == krew.sha256() == hashlib.sha256(krew.archive()).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(krew.archive())) as tar:
        [member] = tar.getmembers()
        assert (member.name, member.mode) == ("kubectl-traderbot", 0o755)
    assert [f["from"] for f in platform["files"]] == ["kubectl-traderbot"]


def test_the_krew_shim_runs_the_plugin(tmp_path: Path) -> None:
    shim = tmp_path / krew.BINARY
    shim.write_text(krew.SHIM)
    shim.chmod(0o755)
    result = subprocess.run(
        [str(shim), "--help"], capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "TRADERBOT_PYTHON": sys.executable},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: kubectl traderbot")


# --- docs -------------------------------------------------------------------------------

GUIDE = ROOT / "docs" / "operations-guide.md"
PLUGIN_DOC = ROOT / "docs" / "plugin.md"


def _one_liners() -> list[str]:
    """Every `kubectl traderbot` command of the guide, and of plugin.md's code blocks."""
    found = re.findall(r"kubectl traderbot [^`\n]+", GUIDE.read_text())
    in_blocks = re.findall(r"```\n(.*?)```", PLUGIN_DOC.read_text(), flags=re.DOTALL)
    for block in in_blocks:
        found += [
            line.removeprefix("$ ")
            for line in block.splitlines()
            if line.removeprefix("$ ").startswith("kubectl traderbot ")
        ]
    return [re.sub(r"\s+#\s.*$", "", command).strip() for command in found]


def test_every_documented_one_liner_is_a_command_the_plugin_takes() -> None:
    commands = _one_liners()
    assert len(commands) > 10
    assert "kubectl traderbot status alpha" in commands
    for command in commands:
        args = shlex.split(command)[2:]
        if args in (["status"], ["--help"]):  # the guide's table names the command alone
            continue
        parsed = cli.build_parser().parse_args(args)
        assert parsed.command in cli.COMMANDS, command


def test_the_guide_runner_leaves_the_plugins_one_liners_to_the_cluster_tier() -> None:
    from e2e.guide import guide_commands

    assert not [c for c in guide_commands(GUIDE.read_text()) if c.startswith("kubectl traderbot")]
    assert "kubectl get tb -A" in guide_commands(GUIDE.read_text())
