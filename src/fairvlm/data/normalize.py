"""Attribute normalisation with a record of how every raw value was mapped.

Raw demographic values ("F", "WHITE - RUSSIAN", "67", "-1") are mapped onto a small,
documented vocabulary. Unknown markers ("", "unknown", "declined") map to ``None``,
never to a class; a value that is neither known nor an unknown marker raises
:class:`UnknownCategory`, which the readers turn into a :class:`~fairvlm.errors.DataError`
naming the file, row and column. Each normaliser counts what it mapped, and its
:meth:`Normalizer.record` is stored in the dataset metadata.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Collection, Mapping

#: Raw strings (after strip + casefold) meaning "unknown" for every attribute.
UNKNOWN_TOKENS: frozenset[str] = frozenset(
    {"", "unknown", "nan", "none", "null", "na", "n/a", "not available", "missing", "-1"}
)

#: Age groups of the clinical readers (HAM10000, MIMIC-CXR): bounds are inclusive in the
#: middle group, i.e. 45 and 65 are "45-65".
AGE_GROUPS: tuple[str, ...] = ("<45", "45-65", ">65")

#: The race vocabulary of the MIMIC-style reader, and the prefixes of MIMIC-IV's raw
#: ``race`` values that map onto it ("WHITE - RUSSIAN" -> white, "ASIAN - KOREAN" ->
#: asian, "HISPANIC/LATINO - DOMINICAN" -> hispanic). Checked in order, first match wins.
RACE_VOCABULARY: tuple[str, ...] = ("white", "black", "asian", "hispanic", "other")
MIMIC_RACE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("white", "white"),
    ("portuguese", "white"),
    ("black", "black"),
    ("african american", "black"),
    ("asian", "asian"),
    ("hispanic", "hispanic"),
    ("latino", "hispanic"),
    ("south american", "hispanic"),
    ("american indian", "other"),
    ("native hawaiian", "other"),
    ("pacific islander", "other"),
    ("multiple race", "other"),
    ("other", "other"),
)
#: MIMIC-IV's ways of saying "unknown" for race.
MIMIC_RACE_UNKNOWN: frozenset[str] = frozenset(
    {"unknown", "unable to obtain", "patient declined to answer", "declined", "declined to answer"}
)

SEX_MAPPING: dict[str, str] = {"m": "male", "male": "male", "f": "female", "female": "female"}


class UnknownCategory(ValueError):
    """A raw value that is neither in the vocabulary nor an unknown marker."""


class Normalizer:
    """Maps raw values of one attribute to a vocabulary and records every mapping.

    Args:
        name: the attribute name (for messages and the record).
        mapping: cleaned raw value (stripped, casefolded) -> normalised value.
        func: alternatively, a function of the cleaned raw value returning the
            normalised value or ``None``, raising :class:`UnknownCategory` otherwise.
        prefixes: (prefix, value) pairs tried in order when ``mapping`` has no entry.
        unknown: cleaned raw values that mean unknown (-> ``None``).
        passthrough: accept any other value as its own (cleaned) class.
    """

    def __init__(
        self,
        name: str,
        mapping: Mapping[str, str] | None = None,
        *,
        func: Callable[[str], str | None] | None = None,
        prefixes: tuple[tuple[str, str], ...] = (),
        unknown: Collection[str] = UNKNOWN_TOKENS,
        passthrough: bool = False,
    ) -> None:
        self.name = name
        self.mapping = {k.strip().casefold(): v for k, v in (mapping or {}).items()}
        self.func = func
        self.prefixes = prefixes
        self.unknown = frozenset(unknown)
        self.passthrough = passthrough
        self.seen: dict[str, str | None] = {}
        self.counts: Counter[str] = Counter()

    def _map(self, clean: str) -> str | None:
        if clean in self.unknown:
            return None
        if clean in self.mapping:
            return self.mapping[clean]
        for prefix, value in self.prefixes:
            if clean.startswith(prefix):
                return value
        if self.func is not None:
            return self.func(clean)
        if self.passthrough:
            return clean
        known = sorted(set(self.mapping) | {p for p, _ in self.prefixes})
        raise UnknownCategory(
            f"unknown {self.name} category {clean!r}; expected one of {known} "
            f"or an unknown marker such as {sorted(self.unknown)[:4]}"
        )

    def __call__(self, raw: object) -> str | None:
        """The normalised value of ``raw`` (``None`` = unknown); records the mapping."""
        key = "" if raw is None or isinstance(raw, float) and math.isnan(raw) else str(raw)
        value = self._map(key.strip().casefold())
        self.seen[key] = value
        self.counts[key] += 1
        return value

    def record(self) -> dict:
        """What was mapped so far: ``{"raw_to_normalised": {...}, "counts": {...}}``."""
        return {
            "raw_to_normalised": dict(sorted(self.seen.items())),
            "counts": dict(sorted(self.counts.items())),
        }


def age_group(value: str) -> str | None:
    """``"<45"``, ``"45-65"`` or ``">65"`` for a cleaned age string (see :data:`AGE_GROUPS`)."""
    try:
        age = float(value)
    except ValueError:
        raise UnknownCategory(f"age {value!r} is not a number") from None
    if math.isnan(age):
        return None
    if age < 0 or age > 130:
        raise UnknownCategory(f"age {value!r} is outside 0-130")
    if age < 45:
        return "<45"
    return "45-65" if age <= 65 else ">65"


def age_group_normalizer(name: str = "age_group") -> Normalizer:
    """Numeric ages -> :data:`AGE_GROUPS`; empty / NaN / "unknown" -> None."""
    return Normalizer(name, func=age_group)


def sex_normalizer(name: str = "sex") -> Normalizer:
    """M/F/male/female (any case) -> male / female; unknown markers -> None."""
    return Normalizer(name, SEX_MAPPING)


def mimic_race_normalizer(name: str = "race") -> Normalizer:
    """MIMIC-IV race strings -> :data:`RACE_VOCABULARY`; unknown / declined -> None."""
    return Normalizer(
        name, prefixes=MIMIC_RACE_PREFIXES, unknown=UNKNOWN_TOKENS | MIMIC_RACE_UNKNOWN
    )


__all__ = [
    "AGE_GROUPS",
    "MIMIC_RACE_PREFIXES",
    "RACE_VOCABULARY",
    "UNKNOWN_TOKENS",
    "Normalizer",
    "UnknownCategory",
    "age_group",
    "age_group_normalizer",
    "mimic_race_normalizer",
    "sex_normalizer",
]
