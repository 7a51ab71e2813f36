"""Deleting a bot with ``deletionPolicy: Retain`` keeps its data; applying it again picks it up."""

from __future__ import annotations

from e2e.conftest import apply_bot, delete_namespace, make_bot_namespace
from e2e.stack import Images, Kubectl, OperatorRelease, bot_manifest, place_order
from support.kube import eventually


def test_a_retained_bot_keeps_volumes_and_database_secret_and_comes_back(
    kubectl: Kubectl, operator_release: OperatorRelease, images: Images
) -> None:
    namespaced = make_bot_namespace(kubectl, "tb-e2e-retain")
    assert namespaced.namespace is not None
    try:
        manifest = bot_manifest("bravo", images, deletion_policy="Retain")
        bot = apply_bot(namespaced, manifest)
        bot.wait_phase("Ready")
        with bot.forward() as forward:
            client_order_id = place_order(forward, bot.api_key)["client_order_id"]
        claims = set(namespaced.out("get", "pvc", "-o", "name").split())
        password = bot.secret_value("bravo-db-credentials", "password")

        namespaced("delete", "tb", "bravo", "--wait=true", "--timeout=180s", timeout=200)
        eventually(
            lambda: not namespaced.json("get", "pods")["items"],
            what="every pod of the deleted bot gone",
            timeout=180,
        )
        assert set(namespaced.out("get", "pvc", "-o", "name").split()) == claims
        assert {
            "persistentvolumeclaim/data-bravo-db-0",
            "persistentvolumeclaim/bravo-backup",
        } <= claims
        assert bot.secret_value("bravo-db-credentials", "password") == password

        # Applied again: the same claims and password, the order still there.
        again = apply_bot(namespaced, manifest)
        again.wait_phase("Ready")
        stored = again.psql(
            f"SELECT count(*) FROM orders WHERE client_order_id = '{client_order_id}'"  # noqa: S608
        )
        assert stored == "1"
    finally:
        delete_namespace(kubectl, namespaced.namespace)
