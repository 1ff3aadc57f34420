"""Input text made safe for a terminal.

A ruleset is somebody else's text: a rule comment, a chain name or a pasted prompt can hold ESC
sequences (CSI colours, OSC window titles and hyperlinks, cursor moves), BEL, or C1 controls
(U+0080–U+009F, which some terminals obey as 8-bit CSI/OSC).  Printed raw they would retitle
the operator's terminal or repaint what the view says.  The views (``show``, the trace view) and
the one-line error pass input text through here; ``--json`` does not need to, as JSON escapes
every control character itself.
"""

from __future__ import annotations

_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
# Unicode's own line breaks (a terminal may not break there, but a reader of "one line" splitting
# with str.splitlines() does) and the bidirectional overrides that make text read other than it is.
_FORMATS = [0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]

# In a view each control becomes one visible character of the same width, so columns stay put:
# the Unicode "control pictures" (␛ for ESC, ␇ for BEL…) for C0 and DEL, � for C1.  A newline is
# a view's own line break and is left alone.
_PICTURES: dict[int, str] = {c: chr(0x2400 + c) for c in range(0x20)}
_PICTURES[0x7F] = "\u2421"
_PICTURES.update({c: "\ufffd" for c in range(0x80, 0xA0)})
_PICTURES[0x09] = " "
del _PICTURES[0x0A]
_PICTURES.update({c: "\u2424" for c in (0x2028, 0x2029)})  # ␤
_PICTURES.update({c: "\ufffd" for c in _FORMATS if c not in (0x2028, 0x2029)})

# In a one-line message each control is spelled as Python spells it (\x1b, \n), so nothing of
# the input is lost and the message stays one line.
_ESCAPED: dict[int, str] = {c: f"\\x{c:02x}" for c in _CONTROLS}
_ESCAPED.update({c: f"\\u{c:04x}" for c in _FORMATS})
_ESCAPED.update({0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"})

ONE_LINE_MAX = 2000


def printable(text: str) -> str:
    """``text`` for a view: control characters shown as visible pictures (newlines kept)."""
    if text.isprintable():  # the common case, decided in C
        return text
    return text.translate(_PICTURES)


def one_line(text: str, limit: int = ONE_LINE_MAX) -> str:
    """``text`` as one line for stderr: controls escaped, newlines included, and clipped."""
    if not text.isprintable():
        text = text.translate(_ESCAPED)
    return text if len(text) <= limit else text[:limit] + "…"
