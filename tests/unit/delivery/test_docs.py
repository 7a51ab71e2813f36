"""The docs: links resolve, and the operations guide covers every procedure of the seed guide."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from unit.delivery.delivery_tools import REPO_ROOT

DOCS = REPO_ROOT / "docs"
DELIVERY_PAGES = ["operations-guide.md", "architecture.md", "security.md"]
DELIVERY_PAGES += ["troubleshooting.md", "gitops.md", "images.md", "plugin.md", "monitoring.md"]
SEED = REPO_ROOT / "docs" / "seed" / "operations-guide.en.md"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def github_anchor(heading: str) -> str:
    """Return the anchor GitHub gives a heading: lower case, punctuation dropped, spaces to '-'."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    in_code = False
    found = set()
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            found.add(github_anchor(line.lstrip("#")))
    return found


def test_github_anchor_matches_githubs_rules() -> None:
    assert github_anchor(" 3. Logs") == "3-logs"
    assert github_anchor("Permissions (least privilege)") == "permissions-least-privilege"
    assert github_anchor("Scheduled backups (the seed's `scripts/backup.sh` + cron)") == (
        "scheduled-backups-the-seeds-scriptsbackupsh--cron"
    )


@pytest.mark.parametrize("name", DELIVERY_PAGES)
def test_every_relative_link_and_anchor_resolves(name: str) -> None:
    page = DOCS / name
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part) if path_part else page
        assert resolved.exists(), f"{name}: broken link {target}"
        if anchor:
            assert anchor in anchors(resolved), (
                f"{name}: no heading for #{anchor} in {resolved.name}"
            )


def seed_sections() -> list[str]:
    if not SEED.exists():
        pytest.fail(f"seed guide not found at {SEED}", pytrace=False)
    return re.findall(r"^## (\d\. .+)$", SEED.read_text(), flags=re.MULTILINE)


def test_operations_guide_has_a_section_for_each_seed_section() -> None:
    guide = (DOCS / "operations-guide.md").read_text()
    sections = seed_sections()
    assert [s.split(".")[0] for s in sections] == ["1", "2", "3", "4", "5", "6"]
    for section in sections:
        assert f"\n## {section}\n" in guide, f"missing section: {section}"


@pytest.mark.parametrize(
    ("seed_procedure", "kubernetes_form"),
    [
        ("docker compose ps", "kubectl get tb"),
        ("GET :3000/health", "curl -s localhost:3000/health"),
        ("/health/ready", "curl -s localhost:3000/health/ready"),
        ("df -h", "kubectl get pvc"),
        ("restart one service", "kubectl rollout restart deploy/alpha-api"),
        ("force-kill", "--grace-period=0 --force"),
        ("graceful shutdown", "SIGTERM"),
        ("follow logs", "kubectl logs -f"),
        ("tail N", "--tail="),
        ("since a timestamp", "--since-time="),
        ("save logs to a dated file", "$(date +%Y%m%d_%H%M%S).log"),
        ("RUST_LOG", "spec.api.logLevel"),
        ("Rate limit exceeded grep", "Rate limit exceeded"),
        ("circuit grep", "circuit"),
        ("pg_dump backup", "trader-backup"),
        ("tables-only backup", "spec.tables: [orders, positions]"),
        ("restore stops the API first", "kubectl scale tb/alpha --replicas=0"),
        ("on-demand backup resource", "kind: TraderBotBackup"),
        ("restore resource", "TraderBotRestore"),
        ("30-day retention", "retentionDays"),
        ("vertical scaling", '"limits":{"cpu":"2","memory":"2Gi"}'),
        ("horizontal scaling", "kubectl scale tb/alpha --replicas=3"),
        ("version upgrade", "kubectl edit tb alpha"),
        ("roll back", "roll back"),
        ("timescaledb jobs", "timescaledb_information.jobs"),
        ("run the compression job", "CALL run_job(1000)"),
        ("drop old chunks", "drop_chunks('klines'"),
        ("security updates", "--no-cache"),
    ],
)
def test_operations_guide_gives_the_kubernetes_form_of_each_seed_procedure(
    seed_procedure: str, kubernetes_form: str
) -> None:
    guide = (DOCS / "operations-guide.md").read_text()
    assert kubernetes_form in guide, f"{seed_procedure}: expected {kubernetes_form!r}"


def test_planned_features_are_marked_planned_not_done() -> None:
    """A TraderBotBackup/Restore mention must say 'planned' while the CRDs do not exist."""
    crds = {path.name for path in (REPO_ROOT / "crds").glob("*.yaml")}
    for kind, crd in (
        ("TraderBotBackup", "traderbot.dev_traderbotbackups.yaml"),
        ("TraderBotRestore", "traderbot.dev_traderbotrestores.yaml"),
    ):
        if crd in crds:
            continue
        for name in DELIVERY_PAGES:
            for paragraph in (DOCS / name).read_text().split("\n\n"):
                if kind in paragraph and "kind: " + kind not in paragraph:
                    assert "lanned" in paragraph, f"{name}: {kind} described as done:\n{paragraph}"
