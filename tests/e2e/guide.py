"""docs/operations-guide.md as something to run: its commands, and a runner that checks them.

The guide writes its commands for a bot ``alpha`` in namespace ``trading``, an
operator in ``traderbot-system`` and versions ``0.1.0``/``0.1.1``. The runner
substitutes the names of the stack under test and runs each command as written
(bash, with this stack's kubectl and helm first on PATH and a kubeconfig whose
context namespace the guide's first command sets). Every command it runs is
recorded, so a test can check that none of the guide's commands was left out.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e.stack import REPO_ROOT, CommandFailedError

GUIDE = REPO_ROOT / "docs" / "operations-guide.md"
COMMAND_START = re.compile(r"^(kubectl|helm|curl|job=)\b")
INLINE_COMMAND = re.compile(r"`((?:kubectl|helm) [^`]+)`")
# The guide's `kubectl traderbot` one-liners: the plugin's, run on the local control
# plane by tests/cluster/operator/test_plugin.py (and their flags checked against the
# plugin's parser by tests/unit/operator/test_plugin.py), not by this runner.
PLUGIN_COMMAND = re.compile(r"^kubectl traderbot\b")


def strip_comment(line: str) -> str:
    """Drop a trailing ``  # comment`` (the guide never puts # inside a command)."""
    return re.sub(r"\s+#\s.*$", "", line).rstrip()


def guide_commands(text: str) -> list[str]:
    """Every command of the guide, in order, as one string each.

    Fenced blocks give commands (``$ `` prompts, or lines starting with kubectl,
    helm, curl or ``job=``; other lines are example output); a trailing ``\\``
    joins the next line, a ``<<EOF`` heredoc takes its lines up to ``EOF``.
    Prose and tables give the backticked ``kubectl ...``/``helm ...`` spans.
    The plugin's one-liners (``kubectl traderbot ...``) are left out (PLUGIN_COMMAND).
    """
    commands: list[str] = []
    lines = text.splitlines()
    in_block = False
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if line.startswith("```"):
            in_block = not in_block
            continue
        if not in_block:
            commands.extend(INLINE_COMMAND.findall(line))
            continue
        candidate = line[2:] if line.startswith("$ ") else line.strip()
        if not COMMAND_START.match(candidate):
            continue
        command = strip_comment(candidate)
        while command.endswith("\\") and index < len(lines):
            command = command[:-1].rstrip() + " " + strip_comment(lines[index].strip())
            index += 1
        if command.endswith("<<EOF"):
            body = []
            while index < len(lines) and lines[index].strip() != "EOF":
                body.append(lines[index])
                index += 1
            index += 1
            command = "\n".join([command, *body, "EOF"])
        commands.append(command)
    return [command for command in commands if not PLUGIN_COMMAND.match(command)]


@dataclass
class GuideRunner:
    """Runs the guide's commands against the stack under test, as an SRE would type them."""

    kubectl_binary: Path
    kubeconfig: Path  # a copy: the guide's set-context changes it
    workdir: Path  # the SRE's working folder: charts/ and examples/ linked from the repo
    names: dict[str, str]  # guide name -> name under test (alpha, trading, versions...)
    known: set[str] = field(default_factory=set)
    ran: dict[str, str] = field(default_factory=dict)  # command -> how it was covered

    @classmethod
    def create(
        cls, *, kubectl_binary: Path, kubeconfig: Path, workdir: Path, names: dict[str, str]
    ) -> GuideRunner:
        workdir.mkdir(parents=True, exist_ok=True)
        for folder in ("charts", "examples"):
            link = workdir / folder
            if not link.exists():
                link.symlink_to(REPO_ROOT / folder)
        private = workdir / "kubeconfig"
        shutil.copyfile(kubeconfig, private)
        private.chmod(0o600)
        return cls(
            kubectl_binary=kubectl_binary,
            kubeconfig=private,
            workdir=workdir,
            names=names,
            known=set(guide_commands(GUIDE.read_text())),
        )

    def substitute(self, command: str, extra: dict[str, str] | None = None) -> str:
        """The command with the stack's names in place of the guide's (whole words only)."""
        replacements = {**self.names, **(extra or {})}
        pattern = re.compile(
            r"(?<![\w.-])("
            + "|".join(re.escape(k) for k in sorted(replacements, key=len, reverse=True))
            + r")(?![\w])"
        )
        return pattern.sub(lambda m: replacements[m.group(1)], command)

    def _check_known(self, command: str) -> None:
        if command not in self.known:
            raise AssertionError(f"not a command of {GUIDE.name} (edited?): {command!r}")

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        path = env.get("PATH", "/usr/bin:/bin")
        env["PATH"] = f"{self.kubectl_binary.parent}{os.pathsep}{path}"
        env["KUBECONFIG"] = str(self.kubeconfig)
        env.setdefault("HELM_CONFIG_HOME", str(self.workdir / ".helm" / "config"))
        env.setdefault("HELM_CACHE_HOME", str(self.workdir / ".helm" / "cache"))
        env.setdefault("HELM_DATA_HOME", str(self.workdir / ".helm" / "data"))
        return env

    def run(
        self,
        command: str,
        *,
        extra: dict[str, str] | None = None,
        ok: bool = True,
        timeout: float = 300.0,
        env: dict[str, str] | None = None,
        follow_seconds: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run one guide command; fail unless it exits 0 (when ``ok``).

        ``follow_seconds`` is for commands that never end by themselves (``-w``,
        ``logs -f``): they are stopped after that long, and what they printed counts.
        """
        self._check_known(command)
        script = self.substitute(command, extra)
        # NB: files, not pipes: a command's background job (``kubectl port-forward &``)
        # inherits its output and would hold a pipe open, so reading a pipe to EOF
        # would wait for that job, not for the command.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            process = subprocess.Popen(
                ["bash", "-o", "pipefail", "-c", script],
                cwd=self.workdir,
                env={**self.env(), **(env or {})},
                stdout=out,
                stderr=err,
                text=True,
                start_new_session=True,  # `cmd &` children die with the group below
            )
            try:
                process.wait(timeout=follow_seconds or timeout)
            except subprocess.TimeoutExpired:
                if follow_seconds is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    raise
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
            finally:
                # Background jobs of the command (port-forwards) end with it.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        result = subprocess.CompletedProcess(script, process.returncode, stdout, stderr)
        if ok and follow_seconds is None and result.returncode != 0:
            raise CommandFailedError(
                f"guide command failed ({result.returncode}): {script}\n{stdout[-3000:]}\n"
                f"{stderr[-3000:]}"
            )
        self.ran[command] = "ran"
        return result

    def run_script(self, script: str, **options: Any) -> subprocess.CompletedProcess[str]:
        """Run consecutive guide commands as one script (they share shell variables)."""
        lines = script.splitlines()
        for line in lines:
            self._check_known(line)
        joined = "\n".join(["set -e", *lines])
        self.known.add(joined)
        try:
            result = self.run(joined, **options)
        finally:
            self.known.discard(joined)
            self.ran.pop(joined, None)
        for line in lines:
            self.ran[line] = "ran in a script"
        return result

    @contextlib.contextmanager
    def background(self, command: str, *, extra: dict[str, str] | None = None) -> Iterator[None]:
        """Run a guide command that ends with ``&`` (a port-forward) while the block runs."""
        self._check_known(command)
        script = self.substitute(command, extra).rstrip("& ")
        process = subprocess.Popen(
            ["bash", "-c", f"exec {script}"],
            cwd=self.workdir,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()  # "Forwarding from ..." once it listens
            assert "Forwarding from" in line, (line, process.stderr and process.stderr.read())
            self.ran[command] = "ran in the background"
            yield
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)

    def covered_by(self, fragment: str, full: Iterable[str]) -> None:
        """Count a table's shorthand (``kubectl scale tb``) as run by its full forms."""
        self._check_known(fragment)
        forms = [c for c in full if c in self.ran and c.startswith(fragment)]
        assert forms, f"{fragment!r}: none of its full forms ran yet"
        self.ran[fragment] = f"shorthand of {forms[0]!r}"

    def done_by_fixture(self, command: str, how: str) -> None:
        """Count a command the session's fixtures ran in an equivalent form (the install)."""
        self._check_known(command)
        self.ran[command] = f"fixture: {how}"
