#!/usr/bin/env python3
"""Man pages and bash completion for every kloader command, from its argparse definition.

    python tools/command_docs.py ~/.local/share

writes DIR/man/man1/NAME.1 and DIR/bash-completion/completions/NAME for each
command: under ~/.local/share, man-db and bash-completion find them by
themselves (man through ~/.local/bin on PATH, bash-completion on a command's
first completion).  They are generated, not committed, so an option added
anywhere needs no second step.

The commands are pyproject.toml's [project.scripts]; each command's module
has `make_parser()`, the parser its `main()` uses, so a new option reaches
`--help`, the man page and completion from one definition.  The prose under
DESCRIPTION is the command module's docstring.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# What a value is, by the metavar that names it: how the shell completes it.
# Every metavar of every command is here (a test checks), so a new argument
# says how it completes; None: free text, nothing to offer.
COMPLETES: dict[str, str | None] = {
    "PATH": "file", "DIR": "dir", "DIR|RELEASE": "dir",
    "FILENAME": "ko", "NAME.ko": "ko", "OTHER.ko": "ko", "SRC.c": "c",
    "NAME": "module", "FILE|NAME": "ko module",
    "PARAM=VALUE": None, "SECONDS": None, "BYTES": None, "N": None, "STR": None, "LEVEL": None,
    "LIST": None, "FIELD": None, "FLAGS": None, "X[=Y]": None,
    "NAME|ALIAS": "module", "RELEASE": None, "MSEC": None, "Module.symvers": "file", "System.map": "file",
}
# Where kloader's commands stand in for Linux's.
SEE_ALSO = {"kinsmod": "insmod(8)", "krmmod": "rmmod(8)", "klsmod": "lsmod(8)", "kmodinfo": "modinfo(8)",
            "kdmesg": "dmesg(1)", "kdepmod": "depmod(8)", "kmodprobe": "modprobe(8)"}


def commands() -> dict[str, argparse.ArgumentParser]:
    """Each console script's parser, by command name, in pyproject's order."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    return {name: importlib.import_module(target.split(":")[0]).make_parser() for name, target in scripts.items()}


def module_doc(name: str) -> str:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    doc = importlib.import_module(scripts[name].split(":")[0]).__doc__ or ""
    return doc.strip()


def metavar(action: argparse.Action) -> str | None:
    if action.nargs == 0:
        return None
    if action.metavar is not None:
        return action.metavar if isinstance(action.metavar, str) else " ".join(action.metavar)
    return action.dest.upper()


# -- man pages ---------------------------------------------------------------

def roff(text: str) -> str:
    """Text as roff reads it: backslashes escaped, hyphens as minus signs, no line taken for a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = "".join(ch if ord(ch) < 128 else f"\\[u{ord(ch):04X}]" for ch in text)
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.split("\n"))


def paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]


def option_head(action: argparse.Action) -> str:
    value = metavar(action)
    if not action.option_strings:
        return f"\\fI{roff(value or action.dest)}\\fR"
    flags = ", ".join(f"\\fB{roff(flag)}\\fR" for flag in action.option_strings)
    return flags + (f" \\fI{roff(value)}\\fR" if value else "")


def man_page(name: str, p: argparse.ArgumentParser, version: str) -> str:
    formatter = p._get_formatter()
    usage = " ".join(p.format_usage().split())
    usage = usage.removeprefix("usage: ")
    lines = [f'.TH {name.upper()} 1 "" "kloader {version}" "kloader commands"',
             ".nh", ".SH NAME", f"{name} \\- {roff((p.description or '').rstrip('.'))}",
             ".SH SYNOPSIS", roff(usage),
             ".SH DESCRIPTION"]
    for para in paragraphs(module_doc(name)):
        lines += [".PP", roff(para)]
    for group in p._action_groups:
        actions = [a for a in group._group_actions if a.help is not argparse.SUPPRESS]
        if not actions:
            continue
        title = {"positional arguments": "ARGUMENTS", "options": "OPTIONS"}.get(group.title or "", None)
        lines.append(f".SH {title}" if title else f".SS {roff((group.title or '').capitalize())}")
        for action in actions:
            lines += [".TP", option_head(action), roff(formatter._expand_help(action) if action.help else "")]
    if p.epilog:
        lines += [".PP", roff(p.epilog)]
    if any("--socket" in a.option_strings for a in p._actions) and name != "kloaderd":
        lines += [".SH ENVIRONMENT", ".TP", "\\fBKLOADERD_SOCKET\\fR",
                  "kloaderd's socket when \\fB\\-\\-socket\\fR is not given; else "
                  "\\fI$XDG_RUNTIME_DIR/kloaderd.sock\\fR, else \\fI/tmp/kloaderd\\-$UID/kloaderd.sock\\fR."]
    others = [f"\\fB{other}\\fR(1)" for other in commands_order() if other != name]
    lines += [".SH SEE ALSO", ", ".join(others + ([SEE_ALSO[name]] if name in SEE_ALSO else []))]
    return "\n".join(lines) + "\n"


def commands_order() -> list[str]:
    return list(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"])


# -- bash completion ---------------------------------------------------------

BASH_HEAD = '''# bash completion for a kloader command, generated by tools/command_docs.py
# from its argparse definition.  bash-completion loads it from
# ~/.local/share/bash-completion/completions/ on first use; or source it.

_kloader_values() {
    # $1: what to offer (file, dir, ko, c, module; several space-separated)
    local kind cur=${COMP_WORDS[COMP_CWORD]}
    for kind in $1; do
        case $kind in
            file) compopt -o filenames 2>/dev/null; COMPREPLY+=($(compgen -f -- "$cur")) ;;
            dir) compopt -o filenames 2>/dev/null; COMPREPLY+=($(compgen -d -- "$cur")) ;;
            ko|c) compopt -o filenames 2>/dev/null
                  COMPREPLY+=($(compgen -f -X "!*.$kind" -- "$cur") $(compgen -d -- "$cur")) ;;
            module) COMPREPLY+=($(compgen -W "$(klsmod 2>/dev/null | awk 'NR > 1 { print $1 }')" -- "$cur")) ;;
        esac
    done
}
'''


def bash_function(name: str, p: argparse.ArgumentParser) -> str:
    fn = "_kloader_" + name.replace("-", "_")
    flags = sorted(flag for a in p._actions for flag in a.option_strings)
    valued: dict[str | None, list[str]] = {}
    for action in p._actions:
        if action.option_strings and action.nargs != 0:
            valued.setdefault(COMPLETES[metavar(action) or ""], []).extend(action.option_strings)
    positional = sorted({kind for a in p._actions if not a.option_strings
                         for kind in (COMPLETES[metavar(a) or ""] or "").split()})
    cases = "".join(f'        {"|".join(opts)}) _kloader_values "{kind or ""}"; return ;;\n'
                    for kind, opts in valued.items())
    return (f"{fn}() {{\n"
            "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
            "    COMPREPLY=()\n"
            '    case $prev in\n'
            f"{cases}"
            "    esac\n"
            '    if [[ $cur == -* ]]; then\n'
            f'        COMPREPLY=($(compgen -W "{" ".join(flags)}" -- "$cur"))\n'
            "        return\n"
            "    fi\n"
            f'    _kloader_values "{" ".join(positional)}"\n'
            "}\n"
            f"complete -F {fn} {name}\n")


# -- the command -------------------------------------------------------------

def outputs(root: Path) -> dict[Path, str]:
    """Every file, by where under `root` it goes."""
    sys.path.insert(0, str(REPO))
    from kloaderd import __version__ as version
    files = {}
    for name, p in commands().items():
        files[root / "man" / "man1" / f"{name}.1"] = man_page(name, p, version)
        files[root / "bash-completion" / "completions" / name] = BASH_HEAD + "\n" + bash_function(name, p)
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, metavar="DIR", help="where man/ and bash-completion/ go (e.g. ~/.local/share)")
    args = ap.parse_args(argv)
    for path, text in outputs(args.root).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
