"""The configuration of metric computation from audit records (saved in metrics.json)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fairvlm.config import Config, is_int
from fairvlm.errors import bad_value

#: Intersections computed when both attribute columns exist (clinical and social benches).
DEFAULT_RECORD_INTERSECTIONS: tuple[tuple[str, str], ...] = (
    ("race", "sex"),
    ("race", "gender"),
    ("skin_tone", "sex"),
)


@dataclass
class MetricsConfig(Config):
    """How :func:`fairvlm.metrics.compute_metrics` turns records into metrics.

    Attributes:
        min_group_size: groups smaller than this are flagged ``small``: reported, but
            left out of the gap, ratio, std and ES (a note says which).
        include_small_groups: count small groups in the gap, ratio, std and ES too.
        n_boot: bootstrap replicates for CIs (0 disables CIs).
        seed: seed of the bootstrap (same seed, same CIs).
        ci_level: coverage of the percentile intervals.
        k: K of Skew@K / Bias@K; ``None`` = half of each concept's pool (rounded up).
            Always raised to at least the number of attribute values.
        attributes: attribute names to audit (``attr.<name>`` columns); ``None`` = all.
        intersections: attribute tuples to cross; ``None`` = the defaults
            :data:`DEFAULT_RECORD_INTERSECTIONS` whose columns exist.
        lexicon: mention lexicon name -> keywords; ``None`` = ``social.DEFAULT_LEXICON``.
        bias_pairs: attribute -> ``[first, second]`` for Bias@K ``(n1 - n2)/(n1 + n2)``.
        label_synonyms: VQA label -> other surface forms used when parsing answers.
        on_multiple: what a VQA answer naming several labels is: ``unparsed`` or ``first``.
    """

    min_group_size: int = 10
    include_small_groups: bool = False
    n_boot: int = 1000
    seed: int = 0
    ci_level: float = 0.95
    k: int | None = None
    attributes: list[str] | None = None
    intersections: list[list[str]] | None = None
    lexicon: dict[str, list[str]] | None = None
    bias_pairs: dict[str, list[str]] = field(default_factory=dict)
    label_synonyms: dict[str, list[str]] = field(default_factory=dict)
    on_multiple: str = "unparsed"

    def validate(self) -> None:
        if not is_int(self.min_group_size) or self.min_group_size < 1:
            raise bad_value(
                "min_group_size", self.min_group_size, "use a positive integer, e.g. 10"
            )
        if not is_int(self.n_boot) or self.n_boot < 0:
            raise bad_value(
                "n_boot", self.n_boot, "use 0 (no CIs) or a positive integer, e.g. 1000"
            )
        if not is_int(self.seed):
            raise bad_value("seed", self.seed, "use an integer")
        if not 0.0 < float(self.ci_level) < 1.0:
            raise bad_value("ci_level", self.ci_level, "use a coverage in (0, 1), e.g. 0.95")
        if self.k is not None and (not is_int(self.k) or self.k < 1):
            raise bad_value("k", self.k, "use a positive integer or None (half of each pool)")
        for parts in self.intersections or ():
            if len(parts) < 2:
                raise bad_value(
                    "intersections", parts, "each intersection names at least two attributes"
                )
        for attr, pair in self.bias_pairs.items():
            if len(pair) != 2:
                raise bad_value(
                    f"bias_pairs[{attr!r}]",
                    pair,
                    "give exactly two values, e.g. ['male', 'female']",
                )
        if self.on_multiple not in ("unparsed", "first"):
            raise bad_value("on_multiple", self.on_multiple, "use 'unparsed' or 'first'")
