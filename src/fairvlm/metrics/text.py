"""Word-boundary keyword matching shared by label parsing and mention lexicons.

Hand-written because no library of the stack matches a keyword list with plural forms
at word boundaries: ``woman`` must match ``woman``, ``women``, ``Woman,`` and
``woman's`` but not ``womanhood``; multi-word keywords (``middle aged``) also match
with a hyphen or several spaces.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: Irregular plurals; compounds ending in these (policeman, businesswoman) follow them.
_IRREGULAR = {
    "man": "men",
    "woman": "women",
    "child": "children",
    "person": "people",
    "foot": "feet",
    "tooth": "teeth",
    "mouse": "mice",
    "wife": "wives",
}
#: Words ending in "man" whose plural is regular.
_REGULAR_MAN = {"human", "german", "roman", "shaman", "caiman", "ottoman", "talisman"}


def plural_forms(word: str) -> list[str]:
    """The word and its plural(s), lower-cased: ``woman`` -> ``[woman, women]``.

    Multi-word keywords pluralise their last word. Words that are usually adjectives
    (``asian``, ``female``) also get an ``-s`` form, which is harmless ("females").
    """
    word = word.strip().lower()
    head, _, last = word.rpartition(" ")
    forms = {last}
    irregular = [s for s in _IRREGULAR if last.endswith(s) and last not in _REGULAR_MAN]
    if irregular:
        sing = max(irregular, key=len)
        forms.add(last[: -len(sing)] + _IRREGULAR[sing])
    elif last.endswith("ed"):  # participles (middle aged, dark skinned) have no plural
        pass
    elif last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        forms.add(last[:-1] + "ies")
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        forms.add(last + "es")
    else:
        forms.add(last + "s")
    prefix = head + " " if head else ""
    return sorted({prefix + f for f in forms}, key=lambda f: (f != word, f))


def keyword_regex(keywords: Iterable[str], *, plurals: bool = True) -> re.Pattern[str]:
    """One case-insensitive regex matching any keyword (and plural) as whole words.

    Longer keywords come first so that ``basal cell carcinoma`` wins over ``carcinoma``.
    """
    forms: set[str] = set()
    for kw in keywords:
        forms.update(plural_forms(kw) if plurals else [kw.strip().lower()])
    forms.discard("")
    if not forms:
        return re.compile(r"(?!x)x")  # matches nothing
    alternatives = [
        r"[\s\-]+".join(re.escape(part) for part in re.split(r"[\s\-]+", f))
        for f in sorted(forms, key=len, reverse=True)
    ]
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)
