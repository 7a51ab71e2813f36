"""Security scan: checkov finds nothing in the Dockerfile and the rendered chart.

A check may be skipped only with a one-line reason next to it (a
``checkov.io/skipN`` annotation or a ``# checkov:skip=`` comment); a skip
without a reason fails here just like a failed check.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from traderbot_operator.desired import build_children
from traderbot_operator.models import TraderBot
from unit.delivery.delivery_tools import REPO_ROOT, Helm, value_sets

# JSON on stdout, offline, exit 0 with findings (the test reads them, not the exit code).
CHECKOV_FLAGS = ("--output", "json", "--compact", "--skip-download", "--soft-fail")


def run_checkov(checkov: Path, *, target: list[str], framework: str) -> dict[str, Any]:
    """Run checkov offline and return its JSON report of one framework."""
    env = {
        **os.environ,
        # NB: without these checkov calls its vendor's API for check metadata,
        # which this machine (and CI) cannot reach.
        "BC_SKIP_MAPPING": "TRUE",
        "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
    }
    result = subprocess.run(
        [str(checkov), *target, "--framework", framework, *CHECKOV_FLAGS],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    if isinstance(report, list):
        (report,) = [r for r in report if r.get("check_type") == framework]
    assert isinstance(report, dict)
    return report


def describe(check: dict[str, Any]) -> str:
    return (
        f"{check['check_id']} {check['check_name']} in {check['resource']} ({check['file_path']})"
    )


def assert_clean(report: dict[str, Any]) -> None:
    results = report["results"]
    failed = results.get("failed_checks", [])
    assert not failed, "checkov failed:\n" + "\n".join(describe(check) for check in failed)
    assert report["summary"]["passed"] > 0, "checkov scanned nothing"
    assert report["summary"]["parsing_errors"] == 0
    for skipped in results.get("skipped_checks", []):
        reason = (skipped.get("check_result") or {}).get("suppress_comment", "").strip()
        assert len(reason) >= 20, f"skip without a reason: {describe(skipped)}"


def test_dockerfile_passes_checkov(checkov: Path) -> None:
    report = run_checkov(
        checkov, target=["-f", str(REPO_ROOT / "Dockerfile")], framework="dockerfile"
    )
    assert_clean(report)


def test_rendered_chart_passes_checkov_for_every_value_set(
    checkov: Path, helm: Helm, tmp_path: Path
) -> None:
    for values in value_sets():
        manifests = helm.template(values_files=[values], include_crds=True)
        out = tmp_path / f"{values.stem}.yaml"
        out.write_text(yaml.safe_dump_all(manifests, sort_keys=False))
    report = run_checkov(checkov, target=["-d", str(tmp_path)], framework="kubernetes")
    assert_clean(report)


# Findings in the operator's generated children that we accept, each with its reason.
# Keyed by (check, kind, child suffix); anything not listed here fails the scan.
TAG_PINNED = (
    "the image comes from the TraderBot spec as a pinned tag; digests are the user's choice"
)
ENV_CONTRACT = "credentials reach trader-api through the env contract (docs/configuration.md)"
NO_CPU_LIMIT = "no CPU limit by design: throttling adds latency to order handling and probes"
UPSTREAM_UID = "the upstream image runs as its own fixed UID (postgres 70 / redis 999)"
# Every workload the operator builds: (kind, name suffix).
OPERATOR_WORKLOADS = (
    ("StatefulSet", "-db"),
    ("StatefulSet", "-redis"),
    ("Deployment", "-api"),
    ("CronJob", "-backup"),
    ("CronJob", "-verify"),
)
ACCEPTED_OPERATOR_FINDINGS: dict[tuple[str, str, str], str] = {
    **{
        (check, kind, suffix): reason
        for check, reason in (
            ("CKV_K8S_43", TAG_PINNED),
            ("CKV_K8S_15", TAG_PINNED),
            ("CKV_K8S_35", ENV_CONTRACT),
            ("CKV_K8S_11", NO_CPU_LIMIT),
        )
        for kind, suffix in OPERATOR_WORKLOADS
    },
    ("CKV_K8S_40", "StatefulSet", "-db"): UPSTREAM_UID,
    ("CKV_K8S_40", "StatefulSet", "-redis"): UPSTREAM_UID,
    ("CKV_K8S_22", "StatefulSet", "-db"): (
        "KNOWN GAP, reported to the operator: PostgreSQL needs writable run/tmp dirs "
        "(emptyDir mounts would allow a read-only root)"
    ),
}


def operator_children(example: Path) -> list[dict[str, Any]]:
    """Return what the operator builds for an example TraderBot, with and without monitoring."""
    body = yaml.safe_load(example.read_text())
    body["metadata"] |= {"namespace": "trading", "uid": "00000000-0000-4000-8000-000000000001"}
    bot = TraderBot.from_body(body)
    return build_children(bot, service_monitor_available=True, token=lambda _: "scan-only-token")


def accepted(check: dict[str, Any], bot: str) -> bool:
    kind, _namespace, name = check["resource"].split(".", 2)
    if kind == "Pod":  # checkov names pods of a template by their labels
        name = name.split(".", 1)[0]
    suffix = name.removeprefix(bot)
    return (check["check_id"], kind, suffix) in ACCEPTED_OPERATOR_FINDINGS


EXAMPLES = sorted((REPO_ROOT / "examples").glob("traderbot-*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_operator_generated_manifests_pass_checkov_but_for_accepted_findings(
    checkov: Path, example: Path, tmp_path: Path
) -> None:
    children = operator_children(example)
    bot = children[0]["metadata"]["labels"]["app.kubernetes.io/instance"]
    assert {child["kind"] for child in children} >= {"Deployment", "StatefulSet", "Secret"}
    (tmp_path / "children.yaml").write_text(yaml.safe_dump_all(children, sort_keys=False))
    report = run_checkov(checkov, target=["-d", str(tmp_path)], framework="kubernetes")
    unexpected = [c for c in report["results"].get("failed_checks", []) if not accepted(c, bot)]
    assert not unexpected, "checkov failed:\n" + "\n".join(describe(c) for c in unexpected)
    assert report["summary"]["passed"] > 0


def test_every_operator_pod_is_selected_by_a_network_policy() -> None:
    children = operator_children(EXAMPLES[0])
    selectors = [
        child["spec"]["podSelector"].get("matchLabels", {})
        for child in children
        if child["kind"] == "NetworkPolicy"
    ]
    for child in children:
        if child["kind"] in {"Deployment", "StatefulSet"}:
            labels = child["spec"]["template"]["metadata"]["labels"]
            assert any(sel.items() <= labels.items() for sel in selectors), child["metadata"]


def test_checkov_does_flag_an_insecure_deployment(checkov: Path, tmp_path: Path) -> None:
    """Guard the guard: the same offline run reports a privileged, root Deployment."""
    insecure = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "insecure", "namespace": "scan"},
        "spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {
                    "containers": [
                        {"name": "x", "image": "x:latest", "securityContext": {"privileged": True}}
                    ]
                },
            },
        },
    }
    (tmp_path / "insecure.yaml").write_text(yaml.safe_dump(insecure))
    report = run_checkov(checkov, target=["-d", str(tmp_path)], framework="kubernetes")
    failed = {check["check_id"] for check in report["results"]["failed_checks"]}
    assert "CKV_K8S_16" in failed  # privileged container
    with pytest.raises(AssertionError):
        assert_clean(report)
