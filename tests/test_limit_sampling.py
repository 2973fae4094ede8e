"""``limit``: a seeded draw stratified by group and target (sorted data), or the first N."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from audit_support import FakeVLM
from PIL import Image

from fairvlm.audit import AuditConfig, plan_audit, run_audit
from fairvlm.audit.sampling import allocate
from fairvlm.cli import main
from fairvlm.data.schema import Sample
from fairvlm.errors import ConfigError

_IMAGE = Image.new("RGB", (4, 4))
#: (sex, concept) blocks of the sorted data, in order: the first 100 are all doctors
BLOCKS = [
    (("male", "doctor"), 60),
    (("female", "doctor"), 40),
    (("male", "nurse"), 30),
    (("female", "nurse"), 60),
    ((None, "nurse"), 10),
]


def _sorted_concept_samples() -> list[Sample]:
    out = []
    for (sex, concept), n in BLOCKS:
        for _ in range(n):
            out.append(
                Sample(
                    id=f"c{len(out):03d}",
                    image=_IMAGE,
                    prompt="What is this person?",
                    task="concept",
                    target=concept,
                    options=["doctor", "nurse"],
                    attributes={"sex": sex},
                )
            )
    return out


SAMPLES = _sorted_concept_samples()
POSITION = {s.id: i for i, s in enumerate(SAMPLES)}


def _chosen(task: str = "concept", samples=SAMPLES, **cfg) -> list[Sample]:
    return plan_audit(samples, AuditConfig(tasks=[task], **cfg)).tasks[task][1]


def _strata(chosen) -> dict:
    return dict(Counter((s.attributes["sex"], s.target) for s in chosen))


def test_allocation_is_proportional_by_largest_remainder():
    counts = [n for _, n in BLOCKS]
    assert allocate(counts, 20).tolist() == [6, 4, 3, 6, 1]  # exact quotas
    # quotas 4.5, 3, 2.25, 4.5, 0.75: the two largest remainders (0.75, then the first 0.5)
    assert allocate(counts, 15).tolist() == [5, 3, 2, 4, 1]
    # quotas 1.5, 1, 0.75, 1.5, 0.25 -> 2, 1, 1, 1, 0; the empty stratum takes one from
    # the one furthest above its quota
    assert allocate(counts, 5).tolist() == [1, 1, 1, 1, 1]
    assert allocate([97, 1, 1, 1], 3).tolist() == [3, 0, 0, 0]  # fewer than the strata
    assert allocate(counts, 1000).tolist() == counts


def test_stratified_limit_on_sorted_data_draws_every_stratum():
    chosen = _chosen(limit=15)
    assert len(chosen) == 15
    assert _strata(chosen) == {
        ("male", "doctor"): 5,
        ("female", "doctor"): 3,
        ("male", "nurse"): 2,
        ("female", "nurse"): 4,
        (None, "nurse"): 1,  # unknown sex is a stratum of its own
    }
    assert _strata(_chosen(limit=5)) == {k: 1 for k, _ in BLOCKS}


def test_first_mode_keeps_the_first_samples():
    chosen = _chosen(limit=15, limit_mode="first")
    assert [s.id for s in chosen] == [f"c{i:03d}" for i in range(15)]
    assert _strata(chosen) == {("male", "doctor"): 15}


def test_the_draw_is_seeded_and_in_the_data_order():
    ids = [s.id for s in _chosen(limit=15)]
    assert ids == [s.id for s in _chosen(limit=15)]
    assert [POSITION[i] for i in ids] == sorted(POSITION[i] for i in ids)
    other = _chosen(limit=15, seed=1)
    assert [s.id for s in other] != ids
    assert _strata(other) == _strata(_chosen(limit=15))


@pytest.mark.parametrize("limit", [200, 500])
def test_a_limit_of_at_least_the_samples_keeps_them_all(limit):
    assert [s.id for s in _chosen(limit=limit)] == [s.id for s in SAMPLES]


def test_attributes_are_joint_and_free_text_targets_are_no_strata():
    """report: stratified by the audited attributes alone (its targets are reports)."""
    blocks = [(("male", "light"), 40), (("male", "dark"), 40), (("female", "light"), 10)]
    blocks.append((("female", None), 10))
    groups = [group for group, n in blocks for _ in range(n)]
    samples = [
        Sample(
            id=f"r{i:03d}",
            image=_IMAGE,
            prompt="Write the report.",
            task="report",
            target=f"report {i}",
            attributes={"sex": sex, "skin_tone": tone},
        )
        for i, (sex, tone) in enumerate(groups)
    ]
    joint = _chosen("report", samples, limit=10)
    assert Counter((s.attributes["sex"], s.attributes["skin_tone"]) for s in joint) == {
        ("male", "light"): 4,
        ("male", "dark"): 4,
        ("female", "light"): 1,
        ("female", None): 1,
    }
    by_sex = _chosen("report", samples, limit=10, attributes=["sex"])
    assert Counter(s.attributes["sex"] for s in by_sex) == {"male": 8, "female": 2}


def test_a_mode_change_is_another_audit(tmp_path):
    """The draw is part of the audit's identity: resuming with other samples is refused."""
    cfg = {"tasks": ["probe"], "limit": 4, "progress": False, "metrics": {"n_boot": 0}}
    samples = [
        Sample(
            id=f"p{i}",
            image=_IMAGE,
            prompt="Is this person a doctor?",
            task="probe",
            concept=("doctor", "nurse")[i // 6],
            attributes={"sex": ("male", "female")[i % 2]},
        )
        for i in range(12)
    ]
    out = tmp_path / "a"
    run_audit(FakeVLM(), samples, AuditConfig.from_dict({**cfg, "limit_mode": "first"}), out)
    with pytest.raises(ConfigError, match=r"draw=.*'mode': 'first'.*'mode': 'stratified'"):
        run_audit(FakeVLM(), samples, AuditConfig.from_dict(cfg), out)
    vlm = FakeVLM()
    run_audit(vlm, samples, AuditConfig.from_dict({**cfg, "limit_mode": "first"}), out)
    assert vlm.calls == {}  # the same draw resumes: nothing left to compute


def test_a_bad_mode_names_the_field():
    with pytest.raises(ConfigError, match=r"^limit_mode='bogus' is not valid: use one of"):
        AuditConfig(limit_mode="bogus")


def test_cli_bad_limit_mode_is_one_line(tmp_path, capsys):
    argv = ["audit", "M", "D", "--limit", "4", "--limit-mode", "bogus", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "fairvlm audit: error: --limit-mode='bogus' is not valid: "
        "use one of ['stratified', 'first']"
    ]


def test_seeded_draw_is_numpy_default_rng():
    """Within a stratum the draw is ``default_rng(seed).choice``: reproducible anywhere."""
    one = [{"sex": "male"}] * 10
    samples = [
        Sample(id=f"d{i}", image=_IMAGE, prompt="Describe.", task="describe", attributes=a)
        for i, a in enumerate(one)
    ]
    expected = sorted(np.random.default_rng(3).choice(10, size=4, replace=False).tolist())
    assert [s.id for s in _chosen("describe", samples, limit=4, seed=3)] == [
        f"d{i}" for i in expected
    ]
