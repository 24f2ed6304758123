"""kmod's two name rules, shared by depmod, modprobe.d and lookups."""

from __future__ import annotations


def modname(path: str) -> str:
    """path_to_modname: a file's basename up to its first '.', dashes as underscores."""
    base = path.rsplit("/", 1)[-1]
    return base.split(".", 1)[0].replace("-", "_")


def alias_normalize(alias: str) -> str | None:
    """alias_normalize/underscores: dashes become underscores outside [...] classes;
    None if a bracket is unmatched."""
    out = []
    i, n = 0, len(alias)
    while i < n:
        c = alias[i]
        if c == "-":
            out.append("_")
        elif c == "]":
            return None
        elif c == "[":
            end = alias.find("]", i)
            if end < 0:
                return None
            out.append(alias[i:end + 1])
            i = end
        else:
            out.append(c)
        i += 1
    return "".join(out)
