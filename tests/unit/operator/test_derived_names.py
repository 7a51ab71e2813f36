"""Every name the operator derives fits its kind's limit, at the longest bot name allowed.

Issue 14, class 10: at the CRD's 40-character limit the pre-upgrade backup's name
(55 characters) and the scheduled backup record's name (56) overflowed
TraderBotBackup's 52, so upgrades stuck in BackingUp and scheduled runs got no
record. One rule (``fit_name``: shortened base, hash of the whole, suffix) and one
test over every derived name.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from traderbot_operator.desired import build_children
from traderbot_operator.desired.common import RUN_NAME_MAX_LENGTH, Names, fit_name
from traderbot_operator.models import BOT_NAME_MAX_LENGTH, OBJECT_NAME_PATTERN, TraderBot
from traderbot_operator.upgrade import build_pre_upgrade_backup, pre_upgrade_backup_name
from traderbot_operator.verification import job_name as verify_job_name
from unit.operator.bots import bot

# Where Kubernetes (or our CRDs) bound a name more tightly than a DNS-1123 subdomain.
LIMITS = {
    "Service": 63,  # a DNS-1035 label
    "StatefulSet": 52,  # its pods' controller-revision-hash label is <name>-<10 chars>
    "CronJob": 52,  # its Jobs are <name>-<11 chars at most>, and a Job name is a label
    "Job": 63,
    "TraderBotBackup": RUN_NAME_MAX_LENGTH,  # CRD rule: it names its Job
}
LONGEST = [
    "a" * BOT_NAME_MAX_LENGTH,
    "trading-bot-for-the-european-desk-eth-01",
    "x" * (BOT_NAME_MAX_LENGTH - 1) + "9",
]
LATEST_MINUTES = 99_999_999  # the CronJob controller's Job suffix, until the year 2160


def _full(name: str) -> TraderBot:
    return bot(
        name,
        backup={"enabled": True, "verify": {"enabled": True}},
        monitoring={"enabled": True},
    )


def _check(kind: str, name: str) -> None:
    assert re.fullmatch(OBJECT_NAME_PATTERN.strip("^$"), name), (kind, name)
    assert len(name) <= LIMITS.get(kind, 253), (kind, name, len(name))


@pytest.mark.parametrize("name", LONGEST)
def test_every_child_of_the_longest_bot_name_fits_its_kind(name: str) -> None:
    assert len(name) == BOT_NAME_MAX_LENGTH
    children = build_children(_full(name), service_monitor_available=True)
    kinds = {c["kind"] for c in children}
    assert {"Service", "StatefulSet", "CronJob", "Deployment", "Secret"} <= kinds
    for child in children:
        _check(child["kind"], child["metadata"]["name"])
        for value in (child["metadata"].get("labels") or {}).values():
            assert len(value) <= 63, (child["kind"], value)


@pytest.mark.parametrize("name", LONGEST)
def test_runs_derived_from_the_longest_bot_name_fit(name: str) -> None:
    full = _full(name)
    names = Names(name)
    scheduled_job = f"{names.backup_cronjob}-{LATEST_MINUTES}"
    _check("Job", scheduled_job)
    _check("TraderBotBackup", scheduled_job)  # the record of a scheduled run has its Job's name
    pre_upgrade = pre_upgrade_backup_name(full.model_copy(update={"generation": 10**12}))
    _check("TraderBotBackup", pre_upgrade)
    record = build_pre_upgrade_backup(full, name=pre_upgrade)
    _check("TraderBotBackup", record["metadata"]["name"])
    moment = datetime(2160, 1, 1, tzinfo=UTC).isoformat()
    _check("Job", verify_job_name(full, moment))


def test_short_names_are_unchanged() -> None:
    names = Names("alpha")
    assert names.backup_cronjob == "alpha-backup"
    assert names.backup == "alpha-backup"  # the volume claim: never renamed
    assert pre_upgrade_backup_name(bot("alpha").model_copy(update={"generation": 3})) == (
        "alpha-pre-upgrade-g3"
    )


@pytest.mark.parametrize(
    ("base", "suffix", "limit"),
    [("a" * 60, "", 43), ("b" * 47, "-g123456", 52), ("trading-bot-" * 5, "-x", 20)],
)
def test_fit_name_is_stable_bounded_and_keeps_the_suffix(
    base: str, suffix: str, limit: int
) -> None:
    fitted = fit_name(base, limit=limit, suffix=suffix)
    assert len(fitted) <= limit
    assert fitted.endswith(suffix)
    assert fitted == fit_name(base, limit=limit, suffix=suffix)


def test_long_names_that_share_a_prefix_stay_distinct() -> None:
    shared = "desk-" * 7  # 35 characters in common
    first, second = shared + "one01", shared + "two02"
    assert Names(first).backup_cronjob != Names(second).backup_cronjob
    generations: dict[str, Any] = {"generation": 2}
    assert pre_upgrade_backup_name(
        bot(first).model_copy(update=generations)
    ) != pre_upgrade_backup_name(bot(second).model_copy(update=generations))


def test_the_limits_here_are_the_crds() -> None:
    """The 40 and 52 above are the CRDs' own CEL rules on metadata.name."""
    root = Path(__file__).resolve().parents[3] / "crds"
    rules = {
        path.name: [
            rule["rule"]
            for rule in yaml.safe_load(path.read_text())["spec"]["versions"][0]["schema"][
                "openAPIV3Schema"
            ].get("x-kubernetes-validations", [])
        ]
        for path in root.glob("*.yaml")
    }
    assert (
        f"self.metadata.name.size() <= {BOT_NAME_MAX_LENGTH}"
        in rules["traderbot.dev_traderbots.yaml"]
    )
    for runs in ("traderbot.dev_traderbotbackups.yaml", "traderbot.dev_traderbotrestores.yaml"):
        assert f"self.metadata.name.size() <= {RUN_NAME_MAX_LENGTH}" in rules[runs]
