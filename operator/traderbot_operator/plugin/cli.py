"""``kubectl traderbot``: parse the command line, read or write through the client, print.

Each command reads what it needs (``client``), hands it to a pure builder
(``status``, ``manifests``, ``bundle``) and prints the result for people or, with
``-o json|yaml``, as data. Exit status: 0 done; 1 the request failed, a run
failed or timed out, or nothing could be read; 2 a usage error (argparse).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO, get_args

import yaml
from pydantic import ValidationError

from traderbot_operator.kube import InvalidNameError
from traderbot_operator.models import BACKUP_KIND, RESTORE_KIND, RestoreRunSpec
from traderbot_operator.plugin import bundle, manifests, status
from traderbot_operator.plugin.client import (
    CHILD_RESOURCES,
    LogUnavailableError,
    NotServedError,
    PluginClient,
    PluginError,
)

PROG: Final = "kubectl traderbot"
OUTPUTS: Final = ("json", "yaml")
DEFAULT_OPERATOR_NAMESPACE: Final = "traderbot-system"
DEFAULT_WAIT_SECONDS: Final = 1800  # the guide's `kubectl wait ... --timeout=30m`
POLL_SECONDS: Final = 1.0
REPORT_TAIL_LINES: Final = 5000
EXIT_FAILED: Final = 1


class Printer:
    """Print results for people, or as JSON/YAML with ``-o``; progress goes to stderr."""

    def __init__(self, output: str | None, *, out: TextIO, err: TextIO) -> None:
        self.output = output
        self.out = out
        self.err = err

    def result(self, data: Any, human: str) -> None:
        """Print ``data`` as ``-o`` asks, else ``human``."""
        if self.output == "json":
            self.out.write(json.dumps(data, indent=2, default=str) + "\n")
        elif self.output == "yaml":
            self.out.write(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
        else:
            self.out.write(human if human.endswith("\n") else human + "\n")

    def note(self, message: str) -> None:
        """Say how things go (stderr, so ``-o json`` output stays parseable)."""
        self.err.write(message + "\n")
        self.err.flush()


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _duration(text: str) -> int:
    try:
        return manifests.parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def build_parser() -> argparse.ArgumentParser:
    """Return the command line: global kubectl-like flags, accepted before or after the command.

    NB: the flags are declared on the top parser and again on each command with
    ``default=SUPPRESS``, so ``-n x status b`` and ``status b -n x`` both work and a
    flag given after the command does not get reset by the command's defaults.
    """

    def connection_flags(parser: argparse.ArgumentParser, *, top: bool) -> None:
        default: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
        parser.add_argument("--kubeconfig", help="path to the kubeconfig file", **default)
        parser.add_argument("--context", help="kubeconfig context to use", **default)
        parser.add_argument(
            "-n", "--namespace", help="namespace of the bot (default: the context's)", **default
        )
        parser.add_argument(
            "-o", "--output", choices=OUTPUTS, help="print data instead of text", **default
        )

    parser = argparse.ArgumentParser(
        prog=PROG, description="Operate TraderBots: status, backups, restores, hibernation, logs."
    )
    connection_flags(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_, description=help_)
        sub.add_argument("bot", help="name of the TraderBot")
        connection_flags(sub, top=False)
        return sub

    sub = command("status", "phase, conditions, pods, version, backups, maintenance, trading")
    sub.add_argument("--recent", type=int, default=status.RECENT_RUNS, help="runs to list")

    def wait_flags(sub: argparse.ArgumentParser, what: str) -> None:
        sub.add_argument("--name", help=f"name of the {what} (default: generated)")
        sub.add_argument(
            "--label", type=_label, action="append", default=[], metavar="KEY=VALUE",
            help=f"label of the {what} (repeatable; copied to its Job's pod)",
        )  # fmt: skip
        sub.add_argument("--wait", action="store_true", help="wait until it ends; exit 1 if failed")
        sub.add_argument(
            "--timeout", type=_duration, default=DEFAULT_WAIT_SECONDS,
            help="with --wait, how long at most (e.g. 30m)",
        )  # fmt: skip

    sub = command("backup", "back the bot up now (a TraderBotBackup)")
    wait_flags(sub, "TraderBotBackup")
    sub.add_argument("--no-redis", action="store_true", help="leave the Redis snapshot out")

    sub = command("restore", "restore the bot from one of its backups (a TraderBotRestore)")
    sub.add_argument("--backup", required=True, help="the Completed TraderBotBackup to restore")
    what = RestoreRunSpec.model_fields["what"]
    sub.add_argument("--what", choices=get_args(what.annotation), default=what.default)
    wait_flags(sub, "TraderBotRestore")

    command("hibernate", "stop every pod of the bot, keep its volumes (spec.hibernate: true)")
    command("resume", "start a hibernated bot again (spec.hibernate: false)")

    sub = command("logs", "logs of one component's pods (every container, prefixed)")
    sub.add_argument(
        "--component", choices=(*status.COMPONENTS, manifests.ALL_COMPONENTS), default="api"
    )
    sub.add_argument("--tail", type=int, help="last N lines of each container")
    sub.add_argument("--since", type=_duration, help="only newer than this (e.g. 1h)")

    sub = command("report", "write a support bundle (tar.gz or folder), Secrets redacted")
    sub.add_argument(
        "--to", type=Path,
        help="where: a .tar.gz/.tgz file, else a folder (default ./traderbot-report-...tar.gz)",
    )  # fmt: skip
    sub.add_argument("--operator-namespace", default=DEFAULT_OPERATOR_NAMESPACE)
    sub.add_argument("--tail", type=int, default=REPORT_TAIL_LINES, help="log lines per container")
    return parser


# --- commands ----------------------------------------------------------------------------


def cmd_status(client: PluginClient, args: argparse.Namespace, printer: Printer) -> int:
    """Read the bot, its pods and runs; print the one-screen summary."""
    bot = client.get_bot(args.bot)
    report = status.build_status(
        bot,
        pods=client.list("Pod", labels=manifests.pod_selector(args.bot, manifests.ALL_COMPONENTS)),
        backups=client.list(BACKUP_KIND),
        restores=client.list(RESTORE_KIND),
        recent=args.recent,
    )
    printer.result(
        report.model_dump(mode="json", by_alias=True),
        status.render_status(report, now=datetime.now(UTC)),
    )
    return 0


def _wait(
    client: PluginClient,
    created: dict[str, Any],
    *,
    timeout: float,
    printer: Printer,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[dict[str, Any], bool]:
    """Poll a run until Completed or Failed; return it and whether it ended in time.

    NB: polling, not a watch: one GET a second is nothing for the API server, and
    it survives a dropped connection without resuming a watch.
    """
    kind, name = created["kind"], created["metadata"]["name"]
    deadline = clock() + timeout
    seen: object = object()  # no phase printed yet (None is a phase: not picked up yet)
    run = created
    while True:
        current = client.get_run(kind, name)
        if current is None:
            raise PluginError(f"{kind} {client.namespace}/{name} was deleted while waiting")
        run = current
        phase = (run.get("status") or {}).get("phase")
        if phase != seen:
            printer.note(
                f"{kind.lower()}.traderbot.dev/{name}: {phase or 'waiting for the operator'}"
            )
            seen = phase
        if manifests.outcome(run) != "running":
            return run, True
        if clock() >= deadline:
            return run, False
        sleep(POLL_SECONDS)


def _create_run(
    client: PluginClient, body: dict[str, Any], args: argparse.Namespace, printer: Printer
) -> int:
    """Create a backup or restore, optionally wait for it; print it; exit 1 if it failed."""
    client.get_bot(args.bot)  # a clear "not found" beats a run that fails for it
    created = client.create(body)
    kind, name = created["kind"], created["metadata"]["name"]
    handle = f"{kind.lower()}.traderbot.dev/{name}"
    if not args.wait:
        printer.result(created, f"{handle} created")
        return 0
    printer.note(f"{handle} created")
    run, ended = _wait(client, created, timeout=args.timeout, printer=printer)
    run_status = run.get("status") or {}
    if not ended:
        printer.result(run, f"{handle} still {run_status.get('phase') or 'Pending'}")
        printer.note(f"timed out after {args.timeout}s; it goes on: {PROG} status {args.bot}")
        return EXIT_FAILED
    if manifests.outcome(run) == "failed":
        reason = run_status.get("error") or run_status.get("message") or "no reason given"
        printer.result(run, f"{handle} Failed: {reason}")
        return EXIT_FAILED
    details = ", ".join(
        f"{key} {run_status[key]}"
        for key in ("location", "sizeBytes", "checksum", "restoredAt")
        if run_status.get(key) is not None
    )
    printer.result(run, f"{handle} Completed" + (f": {details}" if details else ""))
    return 0


def cmd_backup(client: PluginClient, args: argparse.Namespace, printer: Printer) -> int:
    """Create a TraderBotBackup of the bot."""
    body = manifests.build_backup(
        bot=args.bot,
        namespace=client.namespace,
        name=args.name,
        redis=not args.no_redis,
        labels=dict(args.label),
    )
    return _create_run(client, body, args, printer)


def cmd_restore(client: PluginClient, args: argparse.Namespace, printer: Printer) -> int:
    """Create a TraderBotRestore of the bot from ``--backup``."""
    body = manifests.build_restore(
        bot=args.bot,
        namespace=client.namespace,
        backup=args.backup,
        what=args.what,
        name=args.name,
        labels=dict(args.label),
    )
    return _create_run(client, body, args, printer)


def _set_hibernate(
    client: PluginClient, args: argparse.Namespace, printer: Printer, *, hibernate: bool
) -> int:
    client.get_bot(args.bot)  # a merge patch on a missing bot says only "not found"
    patched = client.patch_bot(args.bot, manifests.hibernate_patch(hibernate=hibernate))
    verb = "hibernating" if hibernate else "resuming"
    printer.result(
        patched,
        f"traderbot.traderbot.dev/{args.bot} {verb} (spec.hibernate: {str(hibernate).lower()}); "
        f"follow it with: {PROG} status {args.bot}",
    )
    return 0


def cmd_hibernate(client: PluginClient, args: argparse.Namespace, printer: Printer) -> int:
    """Set spec.hibernate: true."""
    return _set_hibernate(client, args, printer, hibernate=True)


def cmd_resume(client: PluginClient, args: argparse.Namespace, printer: Printer) -> int:
    """Set spec.hibernate: false."""
    return _set_hibernate(client, args, printer, hibernate=False)


def _read_logs(
    client: PluginClient,
    pods: list[dict[str, Any]],
    *,
    namespace: str,
    tail: int | None,
    since_seconds: int | None = None,
) -> list[bundle.Log]:
    logs: list[bundle.Log] = []
    for pod, container in manifests.log_targets(pods):
        try:
            text = client.log(
                pod, container=container, namespace=namespace, tail=tail,
                since_seconds=since_seconds,
            )  # fmt: skip
        except LogUnavailableError as error:
            logs.append(bundle.Log(namespace, pod, container, error=str(error)))
        else:
            logs.append(bundle.Log(namespace, pod, container, text=text))
    return logs


def cmd_logs(client: PluginClient, args: argparse.Namespace, printer: Printer) -> int:
    """Print the logs of the component's pods; exit 1 when none could be read."""
    client.get_bot(args.bot)
    pods = client.list("Pod", labels=manifests.pod_selector(args.bot, args.component))
    if not pods:
        printer.note(
            f"no {args.component} pods of bot {client.namespace}/{args.bot} "
            f"(hibernated, scaled to 0 or not started? see: {PROG} status {args.bot})"
        )
        return EXIT_FAILED
    logs = _read_logs(
        client, pods, namespace=client.namespace, tail=args.tail, since_seconds=args.since
    )
    for log in logs:
        if log.error is not None:
            printer.note(f"logs of {log.pod} ({log.container}) are not available: {log.error}")
    read = [log for log in logs if log.error is None]
    several = len(logs) > 1
    human = "".join(
        "".join(f"[{log.pod}/{log.container}] {line}\n" for line in (log.text or "").splitlines())
        if several
        else log.text or ""
        for log in read
    )
    printer.result(
        [
            {"pod": log.pod, "container": log.container, "log": log.text, "error": log.error}
            for log in logs
        ],
        human,
    )
    return 0 if read else EXIT_FAILED


def _collect(client: PluginClient, args: argparse.Namespace) -> bundle.Collected:
    """Read everything the report holds; what cannot be read is a problem noted, not fatal."""
    bot = client.get_bot(args.bot)
    collected = bundle.Collected(namespace=client.namespace, bot=args.bot, objects=[bot])
    for kind in (BACKUP_KIND, RESTORE_KIND):
        collected.objects += status.runs_of(args.bot, client.list(kind))
    labels = {status.INSTANCE_LABEL: args.bot}
    pods: list[dict[str, Any]] = []
    for kind in CHILD_RESOURCES:
        try:
            found = client.list(kind, labels=labels)
        except NotServedError:
            continue  # ServiceMonitor without the Prometheus Operator: nothing to miss
        except PluginError as error:
            collected.problems.append(f"{kind}: {error}")
            continue
        collected.objects += found
        pods += found if kind == "Pod" else []
    names = {(o["kind"], o["metadata"]["name"]) for o in collected.objects}
    try:
        collected.events = [
            event
            for event in client.list("Event")
            if ((event.get("involvedObject") or {}).get("kind"),
                (event.get("involvedObject") or {}).get("name")) in names
        ]  # fmt: skip
    except PluginError as error:
        collected.problems.append(f"events: {error}")
    collected.logs = _read_logs(client, pods, namespace=client.namespace, tail=args.tail)
    try:
        operator_pods = client.list(
            "Pod", labels=manifests.OPERATOR_POD_LABELS, namespace=args.operator_namespace
        )
    except PluginError as error:
        operator_pods = []
        collected.problems.append(f"operator pods: {error}")
    else:
        if not operator_pods:
            collected.problems.append(
                f"no operator pod in namespace {args.operator_namespace} with labels "
                f"{manifests.OPERATOR_POD_LABELS} (pass --operator-namespace)"
            )
    collected.operator_logs = _read_logs(
        client, operator_pods, namespace=args.operator_namespace, tail=args.tail
    )
    logs = [*collected.logs, *collected.operator_logs]
    missing = [log for log in logs if log.error is not None]
    if missing:
        collected.problems.append(
            f"{len(missing)} of {len(logs)} container logs could not be read "
            "(each one's reason: its *.unavailable.txt)"
        )
    return collected


def cmd_report(client: PluginClient, args: argparse.Namespace, printer: Printer) -> int:
    """Write the support bundle; print where, how many files and what could not be read."""
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    root = f"traderbot-report-{client.namespace}-{args.bot}-{stamp}"
    files = bundle.build_bundle(_collect(client, args), created=now.isoformat())
    target: Path = args.to or Path(f"{root}.tar.gz")
    if target.name.endswith((".tar.gz", ".tgz")):
        bundle.write_tarball(files, target, root=root)
    else:
        bundle.write_folder(files, target)
    problems = yaml.safe_load(files["summary.yaml"])["problems"]
    printer.result(
        {"path": str(target), "files": sorted(files), "problems": problems},
        "\n".join(
            [f"wrote {target}: {len(files)} files, Secrets redacted"]
            + [f"  not included: {problem}" for problem in problems]
        ),
    )
    return 0


COMMANDS: Final[dict[str, Callable[[PluginClient, argparse.Namespace, Printer], int]]] = {
    "status": cmd_status,
    "backup": cmd_backup,
    "restore": cmd_restore,
    "hibernate": cmd_hibernate,
    "resume": cmd_resume,
    "logs": cmd_logs,
    "report": cmd_report,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; print an error (not a traceback) when a request or a name fails."""
    args = build_parser().parse_args(argv)
    printer = Printer(args.output, out=sys.stdout, err=sys.stderr)
    try:
        client = PluginClient.connect(
            kubeconfig=args.kubeconfig, context=args.context, namespace=args.namespace
        )
        return COMMANDS[args.command](client, args, printer)
    except (PluginError, InvalidNameError) as error:
        printer.note(f"error: {error}")
    except ValidationError as error:
        details = "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in error.errors())
        printer.note(f"error: {details}")
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
