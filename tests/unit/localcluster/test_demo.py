"""`traderbot-cluster demo`: which node it picks and why, the local images, what it prints.

Everything here runs before (or without) a cluster; the demo itself is run
end to end by tests/cluster/test_demo.py (kwok, fallback) and
tests/cluster/test_demo_pods.py (real pods).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from traderbot_devtools import cli, demo_pods
from traderbot_devtools.demo import NODE_AUTO, NODE_KWOK, NODE_REAL, DemoError
from traderbot_devtools.demo_pods import HostFacts, LocalImages
from traderbot_devtools.images import split_reference

REPO = Path(__file__).resolve().parents[3]
ABLE = HostFacts(root=True, missing_tools=(), missing_binaries=(), bridge_in_use=False)
IMAGES = LocalImages(
    operator="traderbot.local/traderbot-operator:0.1.0",
    workload="traderbot.local/trader-api:0.1.0",
    database="traderbot.local/postgres:17",
    redis="traderbot.local/redis:8",
    sandbox="traderbot.local/pause:3.10",
    archives=(Path("/a/trader-api.tar"),),
)


@pytest.mark.parametrize(
    ("argv", "node"),
    [
        ([], NODE_AUTO),
        (["--node", "kwok"], NODE_KWOK),
        (["--kwok"], NODE_KWOK),
        (["--real-node"], NODE_REAL),
        (["--node", "real"], NODE_REAL),
    ],
)
def test_the_node_is_chosen_by_flag_and_defaults_to_auto(argv: list[str], node: str) -> None:
    args = cli.build_parser().parse_args(["demo", *argv])
    assert args.node == node
    assert args.timeout is None, "each kind of node has its own default deadline"


def test_kwok_and_real_node_flags_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["demo", "--kwok", "--real-node"])
    assert "not allowed with" in capsys.readouterr().err


def test_a_machine_with_everything_has_no_blocker() -> None:
    assert demo_pods.blockers(ABLE) == []


def test_every_blocker_says_what_to_do() -> None:
    facts = HostFacts(
        root=False,
        missing_tools=("containerd", "/usr/lib/cni/bridge"),
        missing_binaries=("kubelet",),
        bridge_in_use=True,
    )
    reasons = demo_pods.blockers(facts)
    assert len(reasons) == 4
    assert reasons[0].startswith("not root")
    assert "missing containerd, /usr/lib/cni/bridge (`make setup` installs them" in reasons[1]
    assert "missing kubelet (`make k8s-binaries` builds them)" in reasons[2]
    assert "bridge tbr0 exists" in reasons[3]


def test_explicit_real_node_is_refused_with_the_reasons_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    facts = HostFacts(
        root=True, missing_tools=("containerd",), missing_binaries=(), bridge_in_use=False
    )
    monkeypatch.setattr(demo_pods, "observe_host", lambda *, bin_dir: facts)
    workdir = tmp_path / "c"
    assert cli.main(["demo", "--dir", str(workdir), "--real-node"]) == 1
    err = capsys.readouterr().err
    assert "the demo cannot run on real pods here:\n- missing containerd" in err
    assert "falling back" not in err
    assert not workdir.exists()


def test_auto_falls_back_to_kwok_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    facts = HostFacts(root=False, missing_tools=(), missing_binaries=(), bridge_in_use=False)
    monkeypatch.setattr(demo_pods, "observe_host", lambda *, bin_dir: facts)
    args = cli.build_parser().parse_args(["demo", "--dir", str(tmp_path / "c")])
    assert cli._demo_node(args) == NODE_KWOK
    err = capsys.readouterr().err
    assert "real pods are not possible here:\n- not root" in err
    assert "falling back to the kwok demo" in err


def test_auto_picks_the_real_node_where_it_can_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo_pods, "observe_host", lambda *, bin_dir: ABLE)
    args = cli.build_parser().parse_args(["demo", "--dir", str(tmp_path / "c")])
    assert cli._demo_node(args) == NODE_REAL


def test_a_failed_image_build_falls_back_with_the_scripts_last_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "images.sh"
    script.write_text(
        "echo 'images: building operator' >&2\necho 'images: missing debootstrap' >&2\nexit 1\n"
    )
    monkeypatch.setattr(demo_pods, "observe_host", lambda *, bin_dir: ABLE)
    args = cli.build_parser().parse_args(
        ["demo", "--dir", str(tmp_path / "c"), "--images-script", str(script)]
    )
    assert cli._run_real_demo(args) is None, "auto: the caller runs the kwok demo"
    err = capsys.readouterr().err
    assert "building the images" in err
    assert f"{script} failed (exit 1); its last lines:\n  images: building operator" in err
    assert "falling back to the kwok demo" in err

    args.node = NODE_REAL
    assert cli._run_real_demo(args) == 1, "asked for real pods: no fallback"
    assert "the demo cannot run on real pods" in capsys.readouterr().err


def _list_line(name: str, ref: str, archive: Path) -> str:
    return f"name={name} ref={ref} id=sha256:{name} archive={archive}"


def test_the_images_come_from_hack_images_sh_list(tmp_path: Path) -> None:
    archives = {name: tmp_path / f"{name}.tar" for name in ("op", "api", "pg", "redis", "pause")}
    for path in archives.values():
        path.write_bytes(b"")
    listing = "\n".join(
        [
            _list_line("operator", "traderbot.local/traderbot-operator:0.2.0", archives["op"]),
            _list_line("workload", "traderbot.local/trader-api:0.2.0", archives["api"]),
            _list_line("workload-next", "traderbot.local/trader-api:0.2.1", archives["api"]),
            _list_line("postgres", "traderbot.local/postgres:17", archives["pg"]),
            _list_line("redis", "traderbot.local/redis:8", archives["redis"]),
            _list_line("pause", "traderbot.local/pause:3.10", archives["pause"]),
        ]
    )
    images = demo_pods.read_image_list(listing, source=tmp_path / "images.txt")
    assert images.operator_repository == "traderbot.local/traderbot-operator"
    assert images.operator_tag == "0.2.0"
    assert (images.workload_repository, images.workload_version) == (
        "traderbot.local/trader-api",
        "0.2.0",
    )
    assert images.sandbox == "traderbot.local/pause:3.10"
    assert images.archives == tuple(sorted(archives.values())), "each archive once"


def test_a_listed_image_without_a_tag_is_a_demo_error(tmp_path: Path) -> None:
    archive = tmp_path / "all.tar"
    archive.write_bytes(b"")
    refs = {"operator": "r/op", "workload": "r/api:1", "postgres": "r/pg:17"}
    refs |= {"redis": "r/redis:8", "pause": "r/pause:3.10"}
    listing = "\n".join(_list_line(name, ref, archive) for name, ref in refs.items())
    with pytest.raises(DemoError, match="'r/op' has no tag"):
        demo_pods.read_image_list(listing, source=tmp_path / "images.txt")


def test_an_incomplete_list_names_what_is_missing(tmp_path: Path) -> None:
    listing = _list_line("operator", "r/op:1", tmp_path / "op.tar")
    with pytest.raises(DemoError, match="lists no workload, postgres, redis, pause"):
        demo_pods.read_image_list(listing, source=tmp_path / "images.txt")


@pytest.mark.parametrize(
    ("ref", "parts"),
    [
        ("traderbot.local/trader-api:0.1.0", ("traderbot.local/trader-api", "0.1.0")),
        ("registry:5000/app:2", ("registry:5000/app", "2")),
    ],
)
def test_references_split_at_the_tag_not_the_port(ref: str, parts: tuple[str, str]) -> None:
    assert split_reference(ref) == parts


@pytest.mark.parametrize("ref", ["registry:5000/app", "app", "app@sha256:" + "0" * 64])
def test_a_reference_without_a_tag_is_refused(ref: str) -> None:
    with pytest.raises(ValueError, match="no tag"):
        split_reference(ref)


def test_the_minimal_example_gets_the_local_images_and_keeps_the_rest() -> None:
    minimal = yaml.safe_load((REPO / "examples" / "traderbot-minimal.yaml").read_text())
    local = demo_pods.with_local_images(minimal, IMAGES)
    assert local["metadata"] == {"name": "alpha"}
    assert local["spec"] == {
        "image": "traderbot.local/trader-api",
        "version": "0.1.0",
        "database": {"image": "traderbot.local/postgres:17"},
        "redis": {"image": "traderbot.local/redis:8"},
    }
    assert minimal["spec"] == {}, "the example itself is left as it is"


def test_an_example_keeps_its_own_database_and_redis_settings() -> None:
    bot = {"metadata": {"name": "b"}, "spec": {"database": {"storage": {"size": "2Gi"}}}}
    local = demo_pods.with_local_images(bot, IMAGES)
    assert local["spec"]["database"] == {
        "storage": {"size": "2Gi"},
        "image": "traderbot.local/postgres:17",
    }


def test_the_applied_copy_is_written_for_the_user(tmp_path: Path) -> None:
    example = REPO / "examples" / "traderbot-minimal.yaml"
    bots, written = demo_pods.local_bots(
        {example: [yaml.safe_load(example.read_text())]}, IMAGES, folder=tmp_path / "demo"
    )
    assert written == [tmp_path / "demo" / "traderbot-minimal.yaml"]
    assert list(yaml.safe_load_all(written[0].read_text())) == bots
    assert written[0].read_text().startswith(f"# {example} with the images built here")


def test_helm_installs_the_chart_with_the_local_operator_image() -> None:
    args = demo_pods.helm_command(chart=Path("charts/traderbot-operator"), images=IMAGES)
    assert args[:4] == ["upgrade", "--install", "traderbot-operator", "charts/traderbot-operator"]
    assert "image.repository=traderbot.local/traderbot-operator" in args
    assert "image.tag=0.1.0" in args
    assert "image.pullPolicy=Never" in args, "the node can never pull"
    assert "replicaCount=1" in args, "one node: a standby would guard against nothing"
    assert args[args.index("--namespace") + 1] == "traderbot-system"


def test_the_guide_names_real_pods_logs_the_api_and_the_operator(tmp_path: Path) -> None:
    text = demo_pods.guide(
        workdir=tmp_path,
        kubectl_dir=Path("/bin-dir"),
        namespace="trading",
        bots=["alpha"],
        written=[tmp_path / "demo" / "traderbot-minimal.yaml"],
        helm_args=demo_pods.helm_command(chart=Path("charts/traderbot-operator"), images=IMAGES),
    )
    for line in (
        "export PATH=/bin-dir:$PATH",
        f"export KUBECONFIG={tmp_path / 'kubeconfig'}",
        "kubectl get pods -n trading -o wide",
        "kubectl logs -n trading deploy/alpha-api",
        "kubectl port-forward -n trading svc/alpha-api 3000 &",
        "curl localhost:3000/health/ready",
        "curl localhost:3000/api/v1/orders",
        "kubectl get secret -n trading alpha-api-key",
        "kubectl logs -n traderbot-system deploy/traderbot-operator -f",
        "make demo-down",
    ):
        assert line in text, line
