"""The shell commands a Markdown guide (or a file's comments) tells people to run, as argv lists.

Used by check_acr_build.py (the documented `az acr run` line) and check_az_commands.py (every `az`
command of docs/DEPLOY-AKS.md). What counts as a command:

- every line of a fenced block marked sh, bash, shell or console (backslash continuations joined,
  `# comments` dropped), and every inline code span that starts with a command word we look for;
- inside a line, each command of a list or pipeline (`;`, `&&`, `||`, `|`, `do`, `then`) and each
  command substitution `$(...)`, so `ID=$(az aks show ... -o tsv)` yields the `az aks show`.

Shell variables are replaced by placeholder values (`$RG`, `"${RG}"`, `$(git rev-parse HEAD)`):
values the guide assigns itself (`RG=doorbuster-demo`), else a value shaped like what the name
suggests (an Azure resource id for `*_ID`, a GUID for identities), so the tools that parse the
commands see well-formed arguments.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

SHELL_FENCES = {"sh", "bash", "shell", "console"}
GUID = "00000000-0000-0000-0000-000000000000"
SUBSCRIPTION = f"/subscriptions/{GUID}"


@dataclass
class Command:
    where: str  # file:line
    text: str  # the command as written (one logical line, continuations joined)
    argv: list[str]  # with variables replaced by placeholders


def logical_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every shell line in the fenced blocks and inline code spans."""
    out: list[tuple[int, str]] = []
    fence = None
    pending, start = "", 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped[3:].strip().lower()
            continue
        if fence is not None:
            if fence not in SHELL_FENCES:
                continue
            if not pending:
                start = number
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            out.append((start, pending + stripped))
            pending = ""
        else:
            # An inline span is a command when it has an option (`az acr login -n $ACR`); a bare
            # `az acr build` in a sentence names a command, it does not run one.
            for span in re.findall(r"`([^`]+)`", line):
                if re.search(r"\s-", span):
                    out.append((number, span))
    return out


def comment_lines(path: Path, prefix: str = "#") -> list[tuple[int, str]]:
    """(line number, text) of comment lines, continuations joined: commands quoted in a file's header."""
    out, pending, start = [], "", 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.lstrip().startswith(prefix):
            continue
        text = line.lstrip()[len(prefix):].strip()
        if not pending:
            start = number
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        out.append((start, pending + text))
        pending = ""
    return out


def _strip_comment(line: str) -> str:
    """The line without a trailing `# comment` (outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line


def _split_commands(line: str) -> list[str]:
    """The simple commands in a line: split at top-level ; && || | and `do`/`then`, with each
    `$(...)` reported as well (and replaced by a marker in the outer command)."""
    found: list[str] = []

    def substitute(text: str) -> str:
        out, i = "", 0
        while i < len(text):
            if text.startswith("$(", i):
                depth, j = 1, i + 2
                while j < len(text) and depth:
                    depth += {"(": 1, ")": -1}.get(text[j], 0)
                    j += 1
                inner = text[i + 2 : j - 1]
                found.extend(_split_commands(inner))
                out += "$__SUBST__"
                i = j
            else:
                out += text[i]
                i += 1
        return out

    flat = substitute(line)
    # Split at ; && || | and the words do/then, outside quotes only (a JMESPath `| [0]` stays).
    parts, current, quote, i = [], "", None, 0
    while i < len(flat):
        ch = flat[i]
        if quote:
            quote = None if ch == quote else quote
            current += ch
        elif ch in "'\"":
            quote = ch
            current += ch
        elif flat.startswith(("&&", "||"), i):
            parts.append(current)
            current, i = "", i + 2
            continue
        elif ch in ";|":
            parts.append(current)
            current = ""
        elif re.match(r"(?:do|then)\s", flat[i:]) and (not current.strip() or current.endswith((" ", ";"))):
            parts.append(current)
            current, i = "", i + 3
            continue
        else:
            current += ch
        i += 1
    parts.append(current)
    found.extend(p.strip() for p in parts if p and p.strip())
    return found


def assignments(lines: list[tuple[int, str]]) -> dict[str, str]:
    """NAME=value assignments with a literal value (`RG=doorbuster-demo`)."""
    values = {}
    for _, line in lines:
        for cmd in _split_commands(_strip_comment(line)):
            m = re.fullmatch(r"([A-Z_][A-Z0-9_]*)=([^\s`'\"()]+)", cmd)
            if m and "__SUBST__" not in m.group(2):
                values[m.group(1)] = m.group(2)
    return values


def placeholder(name: str, known: dict[str, str]) -> str:
    if name in known:
        value = known[name]
        return value.replace("$RANDOM", "12345")
    if name == "RANDOM":
        return "12345"
    if name.endswith(("IDENTITY", "PRINCIPAL_ID", "OBJECT_ID")) or name in {"EXT_ID"}:
        return GUID
    if name.endswith("_ID"):
        group = f"{SUBSCRIPTION}/resourceGroups/placeholder"
        vnet = f"{group}/providers/Microsoft.Network/virtualNetworks/placeholder"
        if "SUBNET" in name:
            return f"{vnet}/subnets/placeholder"
        if "VNET" in name:
            return vnet
        if "LAW" in name or "WORKSPACE" in name:
            return f"{group}/providers/Microsoft.OperationalInsights/workspaces/placeholder"
        return f"{group}/providers/Microsoft.Placeholder/things/{name.lower().replace('_', '-')}"
    return f"placeholder-{name.lower().replace('_', '-')}"


def expand(text: str, known: dict[str, str]) -> str:
    text = text.replace("$__SUBST__", "placeholder-output")
    # "<subscription id>" and the like: a value the reader fills in.
    text = re.sub(r"<[a-z][a-z ]*id>", GUID, text)
    text = re.sub(r"<[a-z][a-z -]*>", "placeholder", text)
    text = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: placeholder(m.group(1), known), text)
    return re.sub(r"\$([A-Za-z_][A-Za-z0-9_]*)", lambda m: placeholder(m.group(1), known), text)


def commands(lines: list[tuple[int, str]], source: str, first_word: str,
             known: dict[str, str] | None = None) -> list[Command]:
    """Every command starting with `first_word` in the lines, variables replaced (by the lines'
    own assignments, then by `known`, e.g. those of the guide the lines go with)."""
    known = {**(known or {}), **assignments(lines)}
    out = []
    for number, line in lines:
        for cmd in _split_commands(_strip_comment(line)):
            cmd = re.sub(r"^[A-Z_][A-Z0-9_]*=", "", cmd).strip()  # VAR=$(az ...) was split already
            if not re.match(rf"{re.escape(first_word)}(\s|$)", cmd):
                continue
            if "…" in cmd or "..." in cmd:
                continue  # an elided command in prose ("az k8s-extension delete …") is no command
            try:
                argv = shlex.split(expand(cmd, known))
            except ValueError as error:
                argv = [f"<unparsable: {error}>"]
            out.append(Command(f"{source}:{number}", cmd, argv))
    return out


def option(argv: list[str], *names: str) -> str | None:
    """The value of the last `--name value` / `--name=value` among `names`."""
    value = None
    for i, arg in enumerate(argv):
        for n in names:
            if arg == n and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(n + "="):
                value = arg.split("=", 1)[1]
    return value
