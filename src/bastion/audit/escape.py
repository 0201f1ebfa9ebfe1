"""Make audit text safe to print on an operator's terminal: control and bidi characters become visible escapes.

Why: a resource URI, a tool name or a JWT `sub` is caller-controlled. Printed raw, an ESC sequence can recolour
or erase a line, a CR or LF can forge a whole new "allow" line, and a bidi override can reverse what is read.
Only human output is escaped; `--json` output stays exact (JSON escapes C0 itself, and a reader decodes it).
"""

from __future__ import annotations

from typing import Final

_BIDI: Final = frozenset(
    [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029, 0xFEFF]
)
"""Bidi marks, embeddings, overrides and isolates, line/paragraph separators, and the BOM."""


def _escaped(char: str) -> str:
    code = ord(char)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return f"\\x{code:02x}"
    if code in _BIDI:
        return f"\\u{code:04x}"
    return char


_TABLE: Final = {c: _escaped(chr(c)) for c in (*range(0x20), *range(0x7F, 0xA0), *_BIDI)}
"""`str.translate` table: every character that must not reach a terminal raw, to its visible escape."""


def printable(text: str) -> str:
    """`text` with C0/C1 controls (ESC, CR, LF, TAB, DEL...) and bidi controls shown as `\\xNN` / `\\uNNNN`."""
    return text.translate(_TABLE)
