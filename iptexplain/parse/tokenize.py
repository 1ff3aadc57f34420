"""Split a rule line into arguments exactly as iptables-restore does (xtables' add_param_to_argv).

Double quotes group words; inside quotes a backslash escapes the next character (that is how
iptables-save writes ``--comment "a \\"quoted\\" word"``).  Single quotes are accepted the same
way, as shells and hand-written restore files use them.  The common line has no quote at all and
takes the fast path.
"""

from __future__ import annotations

from iptexplain.core.errors import OptionError


def split_args(line: str) -> list[str]:
    if '"' not in line:
        if "'" not in line:
            return line.split()
    elif "\\" not in line and "'" not in line:
        # iptables-save's own quoting: whole words in double quotes, no escapes
        # (``--comment "ns/svc:port cluster IP"``).  Glued or unbalanced quotes take the long way.
        parts = line.split('"')
        last = len(parts) - 1
        if last & 1 == 0:
            out: list[str] = []
            for k, part in enumerate(parts):
                if k & 1:
                    out.append(part)
                    continue
                if part:
                    if (k and not part[0].isspace()) or (k < last and not part[-1].isspace()):
                        break
                    out.extend(part.split())
                elif 0 < k < last:
                    break  # "a""b": one word
            else:
                return out
    return _split_quoted(line)


def _split_quoted(line: str) -> list[str]:
    """The general case, character by character, as xtables' add_param_to_argv."""
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
