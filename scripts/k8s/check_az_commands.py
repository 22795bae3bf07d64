#!/usr/bin/env python3
"""Parses every `az` command of the AKS guide with the real (pinned) Azure CLI, offline.

    check_az_commands.py REPO_DIR       # run with the virtualenv's python that has azure-cli

The commands are taken from docs/DEPLOY-AKS.md (shell blocks and inline code) and the header of
docs/acr-build.yaml (see shell_commands.py), shell variables replaced by placeholder values. Each
runs as written, with no login, in an empty configuration folder and in a network namespace of
its own (`unshare --net`: nothing leaves the machine). Without a login a command must stop for
want of one ("Please run 'az login'") and for nothing else: an unknown, misspelt or missing
argument, a removed command, or a deprecation warning fails the check. Exceptions, each said:

- `az login` is interactive: only its existence is checked (`az login --help`);
- `az extension add` needs the extension index, which is not reachable here: it must fail on
  that and nothing else; `az acr login` first calls Docker, which is not running here: it must
  fail on that and nothing else;
- commands of a CLI extension that no package registry carries (`az k8s-extension`) cannot be
  parsed: they are listed as not parsed, and the guide must install the extension first.

It also packs the build context with the CLI's own `az acr run` packer and checks that it is the
context check_acr_build.py computed from Docker's rules.

Prints one line per problem and exits 1 if there is any.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shell_commands import Command, assignments, comment_lines, commands, logical_lines  # noqa: E402

GUIDE = "docs/DEPLOY-AKS.md"
TASK_FILE = "docs/acr-build.yaml"
# What az says with no login: "Please run 'az login'", or for `az account set` that the
# subscription is not among the (no) subscriptions it knows.
LOGIN_NEEDED = ("Please run 'az login'", "doesn't exist in cloud")
BAD = (
    "unrecognized arguments",
    "the following arguments are required",
    "is misspelled or not recognized",
    "invalid choice",
    "expected one argument",
    "is not a valid value",
    "has been deprecated",
    "will be removed",
    "is in preview",
)
# Extensions no package registry carries: their commands cannot be parsed here.
UNPARSABLE_EXTENSIONS = {"k8s-extension": ["k8s-extension"]}

problems: list[str] = []


def problem(where: str, message: str) -> None:
    problems.append(f"{where}: {message}")


def az(argv: list[str], config: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, AZURE_CONFIG_DIR=config, AZURE_CORE_COLLECT_TELEMETRY="false",
               AZURE_EXTENSION_USE_DYNAMIC_INSTALL="no", AZURE_CORE_NO_COLOR="true",
               AZURE_CORE_SURVEY_MESSAGE="false")
    az_bin = str(Path(sys.executable).parent / "az")
    return subprocess.run(["unshare", "--net", az_bin, *argv[1:]], capture_output=True, text=True,
                          env=env, timeout=120, stdin=subprocess.DEVNULL)


def check(cmd: Command, extensions_added: set[str]) -> str:
    """'' when the command passes, 'skip: …' when it cannot be parsed here, else the problem."""
    group = cmd.argv[1] if len(cmd.argv) > 1 else ""
    for extension, groups in UNPARSABLE_EXTENSIONS.items():
        if group in groups:
            if extension not in extensions_added:
                return f"needs the {extension} extension, and the guide never runs `az extension add --name {extension}`"
            return f"skip: needs the {extension} extension, which no package registry carries"
    with tempfile.TemporaryDirectory() as config:
        if cmd.argv[1:2] == ["login"]:
            result = az(["az", "login", "--help"], config)
            return "" if result.returncode == 0 else f"`az login --help` failed: {result.stderr.strip()[:200]}"
        result = az(cmd.argv, config)
    out = (result.stderr + result.stdout).strip()
    bad = [b for b in BAD if b in out]
    if bad:
        return f"{bad[0]}: {out.splitlines()[0][:300] if out else ''}"
    if cmd.argv[1:3] == ["acr", "login"] and "DOCKER_COMMAND_ERROR" in out:
        return ""
    if cmd.argv[1:3] == ["extension", "add"]:
        if "Unable to get extension index" in out or "network connection" in out:
            return ""
        return f"expected to stop for want of the extension index, got: {out[:300]}"
    if result.returncode != 0 and any(m in out for m in LOGIN_NEEDED):
        return ""
    return f"exit {result.returncode}, not for want of a login: {out[:300]}"


def check_packing(repo: Path) -> str:
    """The files `az acr run` uploads (its own packer, without the Dockerfile it may add back)."""
    from azure.cli.command_modules.acr._archive_utils import _pack_source_code

    import check_acr_build

    with tempfile.TemporaryDirectory() as tmp:
        archive = os.path.join(tmp, "context.tar.gz")
        cwd = os.getcwd()
        os.chdir(repo)
        logging.disable(logging.WARNING)  # the packer's progress lines
        try:
            _pack_source_code(".", archive, "", "")
        finally:
            logging.disable(logging.NOTSET)
            os.chdir(cwd)
        packed = {n.removeprefix("./") for n in tarfile.open(archive).getnames()}
    files = check_acr_build.tracked_files(repo)
    rules = check_acr_build.dockerignore_rules(repo / ".dockerignore")
    ours = {f for f in files if not check_acr_build.excluded(f, rules)}
    theirs = packed & set(files)
    if ours != theirs:
        problem(".dockerignore", f"Docker's rules and the Azure CLI's packer disagree on {sorted(ours ^ theirs)[:5]}")
    if "Dockerfile" not in theirs:
        problem(".dockerignore", "the Azure CLI's packer leaves the Dockerfile out of the context")
    return f"{len(theirs)} tracked files, the Dockerfile among them"


def main() -> int:
    repo = Path(sys.argv[1]).resolve()
    guide = logical_lines(repo / GUIDE)
    cmds = commands(guide, GUIDE, "az")
    cmds += commands(comment_lines(repo / TASK_FILE), TASK_FILE, "az", known=assignments(guide))
    if len(cmds) < 10:
        problem(GUIDE, f"only {len(cmds)} az commands found: the extraction no longer matches the guide")
    added = {c.argv[c.argv.index("--name") + 1] for c in cmds
             if c.argv[1:3] == ["extension", "add"] and "--name" in c.argv[:-1]}
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        verdicts = list(pool.map(lambda c: check(c, added), cmds))
    skipped = []
    for cmd, verdict in zip(cmds, verdicts):
        if verdict.startswith("skip: "):
            skipped.append(f"{cmd.where}: az {' '.join(cmd.argv[1:3])} ({verdict[6:]})")
        elif verdict:
            problem(cmd.where, f"`{cmd.text[:100]}`: {verdict}")
    packing = check_packing(repo)
    for line in skipped:
        print(f"not parsed: {line}")
    if problems:
        print("\n".join(problems))
        print(f"check_az_commands: {len(problems)} problem(s) in {len(cmds)} az commands")
        return 1
    version = subprocess.run([str(Path(sys.executable).parent / "az"), "version", "--query", '"azure-cli"', "-o", "tsv"],
                             capture_output=True, text=True, env=dict(os.environ, AZURE_CONFIG_DIR=tempfile.mkdtemp()))
    print(f"check_az_commands: azure-cli {version.stdout.strip()} parsed {len(cmds) - len(skipped)} of {len(cmds)} az "
          f"commands: each stops only for want of a login; az acr run's packer: {packing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
