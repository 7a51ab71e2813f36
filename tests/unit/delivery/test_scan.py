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
