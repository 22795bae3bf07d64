#!/usr/bin/env python3
"""Checks that the documented ACR build (docs/acr-build.yaml, run by `az acr run`) can work.

    check_acr_build.py REPO_DIR

- The build context `az acr run` uploads holds the Dockerfile and everything it COPYs, and the
  task file itself. The CLI packs the folder by `.dockerignore` and, unlike `docker build`, need
  not add the Dockerfile back (azure-cli 2.91.0 adds a top-level `Dockerfile` for `az acr run`;
  `az acr task run` adds none: Azure/acr#613), so the rules alone must keep it. The
  context is computed with Docker's rules (moby/patternmatcher: patterns cleaned, a leading `/`
  dropped, `*` and `?` stop at `/`, `**` spans directories, a pattern that matches a folder
  matches what is in it, `!` re-includes, the last matching pattern wins) over the files git
  tracks.
- The build step is not cut short: its timeout (the step's `timeout`, else the task's
  `stepTimeout`, else ACR's default of 600 s) is at least twice the slowest cold image build
  measured on this project's machine, and every documented `az acr run` of the task file passes
  `--timeout` covering all its steps' timeouts (ACR's default run timeout is 3600 s).

Prints one line per problem and exits 1 if there is any.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shell_commands import Command, comment_lines, commands, logical_lines, option  # noqa: E402

TASK_FILE = "docs/acr-build.yaml"
GUIDES = ["docs/DEPLOY-AKS.md", "README.md"]
# The slowest image build from nothing measured on this project's 2-core machine (README,
# "Container image and Kubernetes": 30 minutes on a busy machine; a cold `cargo build --release`
# alone takes about 7). ACR's default agent is no faster; the build step gets twice this.
COLD_IMAGE_BUILD_S = 1800
ACR_DEFAULT_STEP_TIMEOUT_S = 600
ACR_DEFAULT_RUN_TIMEOUT_S = 3600

problems: list[str] = []


def problem(where: str, message: str) -> None:
    problems.append(f"{where}: {message}")


# ---- .dockerignore, Docker's rules -------------------------------------------------------------


def _clean(pattern: str) -> str:
    """Go's filepath.Clean for a slash path, then a leading `/` removed (moby's ReadAll)."""
    absolute = pattern.startswith("/")
    parts: list[str] = []
    for part in pattern.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and parts and parts[-1] != "..":
            parts.pop()
        elif part == ".." and absolute:
            continue
        else:
            parts.append(part)
    cleaned = "/".join(parts) or "."
    return cleaned


def _regex(pattern: str) -> re.Pattern:
    """moby/patternmatcher's translation of a pattern into a regular expression."""
    out, i = "^", 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 1
                if pattern[i + 1 : i + 2] == "/":
                    i += 1
                    out += "(.*/)?"  # `**/` matches zero or more directories
                else:
                    out += ".*"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out += re.escape(ch)
            else:
                body = pattern[i + 1 : end]
                out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
                i = end
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + "$")


def dockerignore_rules(path: Path) -> list[tuple[bool, re.Pattern, str]]:
    """(exclusion, regex, text) per pattern, in file order."""
    rules = []
    if not path.exists():
        return rules
    for line in path.read_text().splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        exclusion = text.startswith("!")
        pattern = text[1:].strip() if exclusion else text
        if not pattern:
            continue
        rules.append((exclusion, _regex(_clean(pattern)), text))
    return rules


def excluded(rel: str, rules: list[tuple[bool, re.Pattern, str]]) -> bool:
    """moby's MatchesOrParentMatches: the last pattern matching the path or a parent decides."""
    parents = rel.split("/")[:-1]
    matched = False
    for exclusion, regex, _ in rules:
        if exclusion != matched:
            continue  # an exclusion only matters once matched, a pattern only when not yet
        hit = bool(regex.match(rel)) or any(
            regex.match("/".join(parents[: i + 1])) for i in range(len(parents))
        )
        if hit:
            matched = not exclusion
    return matched


def tracked_files(repo: Path) -> list[str]:
    result = subprocess.run(["git", "-C", str(repo), "ls-files", "-z"], capture_output=True, check=True)
    return [f for f in result.stdout.decode().split("\0") if f and (repo / f).exists()]


# ---- the Dockerfile ----------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[int, str, str]]:
    """(line, INSTRUCTION, arguments) with continuations joined and comments dropped."""
    out, pending, start = [], "", 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        word, _, rest = text.partition(" ")
        out.append((start, word.upper(), rest.strip()))
    return out


def copy_sources(path: Path) -> list[tuple[int, str]]:
    """(line, source) of every COPY/ADD from the build context (not `--from=` another stage)."""
    out = []
    for number, instruction, rest in dockerfile_instructions(path):
        if instruction not in ("COPY", "ADD"):
            continue
        if rest.startswith("["):
            args = json.loads(rest)
        else:
            args = shlex.split(rest)
        flags = [a for a in args if a.startswith("--")]
        if any(f.startswith("--from") for f in flags):
            continue
        paths = [a for a in args if not a.startswith("--")]
        out.extend((number, src) for src in paths[:-1])
    return out


# ---- checks ------------------------------------------------------------------------------------


def build_step_dockerfile(step: dict) -> str:
    args = shlex.split(step["build"])
    return option(args, "-f", "--file") or "Dockerfile"


def check_context(repo: Path, task: dict) -> int:
    rules = dockerignore_rules(repo / ".dockerignore")
    files = tracked_files(repo)
    context = {f for f in files if not excluded(f, rules)}
    where = ".dockerignore"
    if TASK_FILE not in context:
        problem(where, f"{TASK_FILE} is not in the build context: `az acr run --file {TASK_FILE} .` reads it from there")
    for step in task.get("steps", []):
        if "build" not in step:
            continue
        dockerfile = build_step_dockerfile(step)
        if dockerfile not in context:
            problem(where, f"{dockerfile} is not in the build context that `az acr run` uploads, so the build "
                    f"step `-f {dockerfile}` finds nothing to build (re-include it: `!{dockerfile}`)")
        if not (repo / dockerfile).exists():
            problem(TASK_FILE, f"the build step names {dockerfile}, which does not exist")
            continue
        for line, src in copy_sources(repo / dockerfile):
            wanted = [f for f in files if f == src.rstrip("/") or f.startswith(src.rstrip("/") + "/")]
            if src in (".", "./"):
                wanted = files
            if not wanted:
                problem(f"{dockerfile}:{line}", f"COPY {src}: no tracked file there")
            missing = [f for f in wanted if f not in context]
            if missing:
                problem(where, f"{dockerfile}:{line} copies {src}, but the context leaves out "
                        f"{', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}")
    return len(context)


def step_timeouts(task: dict) -> list[tuple[str, int]]:
    default = int(task.get("stepTimeout", ACR_DEFAULT_STEP_TIMEOUT_S))
    out = []
    for i, step in enumerate(task.get("steps", [])):
        out.append((step.get("id", f"acb_step_{i}"), int(step.get("timeout", default))))
    return out


def check_timeouts(repo: Path, task: dict) -> tuple[int, int]:
    timeouts = step_timeouts(task)
    build = [t for (sid, t), step in zip(timeouts, task.get("steps", [])) if "build" in step]
    need = 2 * COLD_IMAGE_BUILD_S
    for seconds in build:
        if seconds < need:
            problem(TASK_FILE, f"the build step may run {seconds} s (stepTimeout/timeout; ACR's default is "
                    f"{ACR_DEFAULT_STEP_TIMEOUT_S} s), under twice the {COLD_IMAGE_BUILD_S} s a cold image "
                    f"build took on this project's machine: set stepTimeout to at least {need}")
    total = sum(t for _, t in timeouts)
    runs: list[Command] = []
    runs += commands(comment_lines(repo / TASK_FILE), TASK_FILE, "az")
    for guide in GUIDES:
        if (repo / guide).exists():
            runs += commands(logical_lines(repo / guide), guide, "az")
    runs = [c for c in runs if c.argv[1:3] == ["acr", "run"] and option(c.argv, "--file", "-f") == TASK_FILE]
    if not runs:
        problem(TASK_FILE, f"no documented `az acr run --file {TASK_FILE}` command found to check --timeout on")
    for run in runs:
        value = option(run.argv, "--timeout")
        seconds = int(value) if value and value.isdigit() else ACR_DEFAULT_RUN_TIMEOUT_S
        if seconds < total:
            problem(run.where, f"`az acr run` {'--timeout ' + value if value else 'without --timeout'} "
                    f"({seconds} s) stops the run before its steps' timeouts ({total} s) are used up: "
                    f"pass --timeout {total} or more")
    return min(build, default=0), len(runs)


def main() -> int:
    repo = Path(sys.argv[1])
    task = yaml.safe_load((repo / TASK_FILE).read_text())
    files = check_context(repo, task)
    build_timeout, runs = check_timeouts(repo, task)
    if problems:
        print("\n".join(problems))
        print(f"check_acr_build: {len(problems)} problem(s)")
        return 1
    print(f"check_acr_build: the context az acr run uploads has {files} tracked files, the Dockerfile and "
          f"every COPY source among them; build step timeout {build_timeout} s "
          f"(>= 2 x {COLD_IMAGE_BUILD_S} s); {runs} documented az acr run command(s) with a --timeout covering the steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
