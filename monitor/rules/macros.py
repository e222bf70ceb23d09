"""Unreplaced-macro detection: does a param value still hold a sender's placeholder?

The rule (also in docs/rules.md): a value is an unreplaced macro when it is exactly a
template filler word, or when one of its *views* holds a macro token. The views are
the trimmed value as received (already percent-decoded once by the parser) and the
same value percent-decoded once and twice more, so ``%7Bclickid%7D`` and
``%257Bclickid%257D`` are caught. Strong syntaxes count everywhere; weak
(single-delimiter) syntaxes count only in a view without whitespace, because free
text like ``Summer [Sale] 2024`` or ``save 20% now`` uses those characters for other
things. A value without any trigger character skips the regexes entirely.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

# Literal placeholders trackers print in their templates for the user to replace
# (Voluum, BeMob); whole value, case-sensitive, so "Replace" or "optional" pass.
FILLERS = frozenset({"REPLACE", "OPTIONAL", "REPLACE_ME"})

# A value with none of these characters cannot hold a macro token.
TRIGGER_CHARS = "{[#%$<!"

_NAME = r"[A-Za-z_][A-Za-z0-9_.:~-]*"
# Names for the single-delimiter styles: no dots or dashes, at least two characters,
# so "#1#", "%b%" and "[a-b]" stay ordinary text.
_WORD = r"[A-Za-z_][A-Za-z0-9_]+"

_TRIGGER = re.compile(r"[{\[#%$<!]")
_SPACE = re.compile(r"\s")
_STRONG = re.compile(
    "|".join(
        (
            # {clickid}, {{click_id}}, { aff_param1 }, Keitaro {status:lead=0 sale=1}
            r"\{\{?\s*" + _NAME + r'(?:\s*:[^{}"]*)?\s*\}\}?',
            # PropellerAds ${SUBID}, Branch ${(name)!}
            r"\$\{[^{}]*\}",
            r"\[\[\s*" + _NAME + r"\s*\]\]",
            r"##" + _WORD + r"##",
            r"%%" + _WORD + r"%%",
            # Awin !!!clickRef!!!
            r"!!!" + _WORD + r"!!!",
        )
    )
)
_WEAK = re.compile(
    "|".join(
        (
            # [CLICK_ID], [subid]; not a PHP-style array key "a[b]=c"
            r"\[" + _NAME + r"\](?!=)",
            # CAKE #s2#, MaxBounty #S1#
            r"#" + _WORD + r"#",
            # %SUBID%, but never a percent-escape: "%E2%82%AC" and "a%20b" are not macros
            r"%(?![0-9A-Fa-f]{2}%)" + _WORD + r"%(?![0-9A-Fa-f]{2})",
            r"\$" + _WORD + r"\$",
            r"<(?P<angle>" + _WORD + r")>",
            r"\$[A-Z][A-Z0-9_]+(?![a-z])",
        )
    )
)
# <b>, <br>, <sub> in free-text values are markup, not macros.
_HTML_TAGS = frozenset(
    "a b i u p q s em br hr li ol ul dl dt dd tr td th col div span strong small big "
    "sub sup img wbr code pre mark abbr cite font center table tbody thead html head "
    "body title style script label input button form select option nav main section "
    "article header footer aside".split()
)
_MAX_VIEWS = 3


def find_macro(value: str) -> str | None:
    """The unreplaced macro token in a param value (as matched), or None when clean."""
    value = value.strip()
    if value in FILLERS:
        return value
    if _TRIGGER.search(value) is None:
        return None
    view = value
    for _ in range(_MAX_VIEWS):
        token = _match(view)
        if token is not None:
            return token
        if "%" not in view:
            return None
        decoded = unquote(view, errors="replace").strip()
        if decoded == view:
            return None
        view = decoded
    return None


def is_macro(value: str) -> bool:
    return find_macro(value) is not None


def _match(view: str) -> str | None:
    strong = _STRONG.search(view)
    if strong is not None:
        return strong.group()
    if _SPACE.search(view) is not None:
        return None
    for weak in _WEAK.finditer(view):
        angle = weak.group("angle")
        if angle is not None and angle.lower() in _HTML_TAGS:
            continue
        return weak.group()
    return None
