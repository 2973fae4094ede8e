"""Counterfactual sets (CMSC / SocialCounterfactuals style): build, check, balance.

A counterfactual set is a group of samples that share a scene and a concept and differ
only in their social attributes. A set is *complete* when it holds every combination of
the values of the attributes it varies (e.g. every race x gender).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fairvlm.data.schema import Sample
from fairvlm.errors import DataError, bad_value


def _get(sample: Sample, name: str):
    if name.startswith("meta."):
        return sample.meta.get(name[5:])
    if name.startswith("attributes."):
        return sample.attributes.get(name[11:])
    if not hasattr(sample, name):
        raise bad_value("key", name, "use Sample field names, 'meta.<key>' or 'attributes.<name>'")
    return getattr(sample, name)


def assign_counterfactual_sets(
    samples: Sequence[Sample],
    key: Sequence[str] | Callable[[Sample], Hashable] = ("concept",),
    *,
    prefix: str = "cf",
) -> list[Sample]:
    """Copies of ``samples`` whose ``counterfactual_set`` groups samples with equal ``key``.

    Args:
        samples: the samples (not modified).
        key: the fields that define a set (Sample fields, ``meta.<key>``), or a function;
            samples that agree on them and differ in their attributes form one set.
        prefix: set ids are ``{prefix}{n}``, numbered by first appearance.

    Raises:
        DataError: a sample whose key contains None (it cannot be placed in a set).
    """
    ids: dict[Hashable, str] = {}
    out = []
    for sample in samples:
        value = key(sample) if callable(key) else tuple(_get(sample, k) for k in key)
        if value is None or (isinstance(value, tuple) and None in value):
            raise DataError(
                f"sample {sample.id!r}: set key {key!r} is {value!r}; give every sample a value"
            )
        set_id = ids.setdefault(value, f"{prefix}{len(ids)}")
        out.append(dataclasses.replace(sample, counterfactual_set=set_id))
    return out


@dataclass
class CompletenessReport:
    """Which counterfactual sets hold every attribute combination, and what the others miss."""

    n_sets: int
    complete: list[str] = field(default_factory=list)
    #: set id -> {"attributes": [...], "missing": [{attr: value}, ...], "unknown": n}
    incomplete: dict[str, dict] = field(default_factory=dict)
    n_without_set: int = 0

    @property
    def all_complete(self) -> bool:
        """True when every set is complete."""
        return not self.incomplete

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return dataclasses.asdict(self) | {"all_complete": self.all_complete}


def check_completeness(
    samples: Sequence[Sample],
    attributes: Sequence[str] | None = None,
    *,
    vocab: Mapping[str, Sequence[str]] | None = None,
) -> CompletenessReport:
    """Check that each counterfactual set covers every combination of its attributes.

    A set varies the attributes (of ``attributes``, default: all) that are known for at
    least one member. The expected values of an attribute come from ``vocab`` or else
    from every set varying the same attributes. A member with an unknown value where
    the set varies that attribute makes the set incomplete (counted as ``unknown``).
    """
    sets: dict[str, list[Sample]] = defaultdict(list)
    n_without = 0
    for sample in samples:
        if sample.counterfactual_set is None:
            n_without += 1
        else:
            sets[sample.counterfactual_set].append(sample)
    if attributes is None:
        attributes = sorted({a for s in samples for a in s.attributes})
    varied = {
        set_id: tuple(
            a for a in attributes if any(m.attributes.get(a) is not None for m in members)
        )
        for set_id, members in sets.items()
    }
    observed: dict[tuple[str, ...], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for set_id, members in sets.items():
        for member in members:
            for a in varied[set_id]:
                if member.attributes.get(a) is not None:
                    observed[varied[set_id]][a].add(member.attributes[a])
    report = CompletenessReport(n_sets=len(sets), n_without_set=n_without)
    for set_id, members in sets.items():
        names = varied[set_id]
        values = [
            list(vocab[a]) if vocab and a in vocab else sorted(observed[names][a]) for a in names
        ]
        present = set()
        unknown = 0
        for member in members:
            combo = tuple(member.attributes.get(a) for a in names)
            if None in combo:
                unknown += 1
            else:
                present.add(combo)
        missing = [c for c in itertools.product(*values) if c not in present]
        if missing or unknown or not names:
            report.incomplete[set_id] = {
                "attributes": list(names),
                "missing": [dict(zip(names, c, strict=True)) for c in missing],
                "unknown": unknown,
            }
        else:
            report.complete.append(set_id)
    return report


def balance(
    samples: Sequence[Sample],
    attributes: Sequence[str],
    *,
    mode: str = "down",
    per_concept: bool = True,
    seed: int = 0,
) -> list[Sample]:
    """Equalise the number of samples per (concept, attribute combination) cell.

    Args:
        samples: the samples; those with an unknown value of one of ``attributes`` are
            kept unchanged (they belong to no cell).
        attributes: the attributes whose combinations form the cells.
        mode: ``"down"`` keeps a seeded random subset of every cell down to the smallest
            cell; ``"up"`` adds seeded random copies up to the largest cell (copies get
            ids ``{id}#up{k}`` and ``meta["duplicate_of"]``).
        per_concept: equalise the cells within each concept (keeping concept
            frequencies) or across all concepts at once.
        seed: the random seed.

    Only observed cells are balanced: a combination absent for a concept stays absent.
    """
    if mode not in ("down", "up"):
        raise bad_value("mode", mode, "use 'down' or 'up'")
    if not attributes:
        raise bad_value("attributes", attributes, "name at least one attribute")
    rng = np.random.default_rng(seed)
    cells: dict[tuple, list[int]] = defaultdict(list)
    for i, sample in enumerate(samples):
        combo = tuple(sample.attributes.get(a) for a in attributes)
        if None not in combo:
            cells[(sample.concept, combo)].append(i)
    pools: dict[object, list[tuple]] = defaultdict(list)
    for cell in cells:
        pools[cell[0] if per_concept else None].append(cell)
    keep: set[int] = set(range(len(samples))) - {i for idx in cells.values() for i in idx}
    copies: list[tuple[int, int]] = []  # (position, source index)
    copy_count: Counter[int] = Counter()
    for pool in pools.values():
        sizes = [len(cells[c]) for c in pool]
        target = min(sizes) if mode == "down" else max(sizes)
        for cell in sorted(pool, key=repr):  # a fixed order keeps the draws seeded
            idx = cells[cell]
            if mode == "down":
                keep.update(rng.choice(idx, size=target, replace=False).tolist())
            else:
                keep.update(idx)
                for source in rng.choice(idx, size=target - len(idx), replace=True).tolist():
                    copies.append((source, copy_count[source]))
                    copy_count[source] += 1
    out = [samples[i] for i in sorted(keep)]
    for source, k in sorted(copies):
        original = samples[source]
        out.append(
            dataclasses.replace(
                original,
                id=f"{original.id}#up{k + 1}",
                meta={**original.meta, "duplicate_of": original.id},
            )
        )
    return out


def cell_counts(samples: Sequence[Sample], attributes: Sequence[str]) -> dict[tuple, int]:
    """Samples per (concept, attribute combination), unknown values included as None."""
    return dict(
        Counter((s.concept, tuple(s.attributes.get(a) for a in attributes)) for s in samples)
    )


__all__ = [
    "CompletenessReport",
    "assign_counterfactual_sets",
    "balance",
    "cell_counts",
    "check_completeness",
]
