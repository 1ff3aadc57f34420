"""Split a rule line into arguments exactly as iptables-restore does (xtables' add_param_to_argv).

Double quotes group words; inside quotes a backslash escapes the next character (that is how
iptables-save writes ``--comment "a \\"quoted\\" word"``).  Single quotes are accepted the same
way, as shells and hand-written restore files use them.  The common line has no quote at all and
takes the fast path.
"""

from __future__ import annotations

from iptexplain.errors import OptionError


def split_args(line: str) -> list[str]:
    if '"' not in line and "'" not in line:
        return line.split()
    out: list[str] = []
    buf: list[str] = []
    quote: str | None = None
    escaped = False
    in_word = False
    for ch in line:
        if quote is not None:
            if escaped:
                buf.append(ch)
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
            else:
                buf.append(ch)
            continue
        if ch in "\"'":
            quote = ch
            in_word = True
        elif ch in " \t\r\n":
            if in_word:
                out.append("".join(buf))
                buf = []
                in_word = False
        else:
            buf.append(ch)
            in_word = True
    if quote is not None:
        raise OptionError("unterminated quoted string")
    if in_word:
        out.append("".join(buf))
    return out
