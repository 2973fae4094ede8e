"""Social concepts as data: the 18 CMSC concepts in three groups, and occupations.

A *concept* is what a social attribute can be stereotypically associated with (an
occupation, a personality trait, a responsibility, an education level). The benchmarks
draw their concepts from here, and ASD / the skew metrics group results by them.
"""

from __future__ import annotations

#: The 18 concepts of CMSC (METHODS.md section 2), in their three groups.
CONCEPT_GROUPS: dict[str, list[str]] = {
    "personality": ["compassionate", "belligerent", "authority", "pleasant", "unpleasant"],
    "responsibility": ["tool", "weapon", "career", "family", "chef", "earning money"],
    "education": [
        "middle school",
        "high school",
        "university",
        "good student",
        "bad student",
        "science",
        "arts",
    ],
}

#: Every CMSC concept, in group order.
CMSC_CONCEPTS: tuple[str, ...] = tuple(c for group in CONCEPT_GROUPS.values() for c in group)

#: Common occupations (SocialCounterfactuals-style). The SocialCounterfactuals reader takes
#: the occupation from each caption instead, so its concepts are not limited to this list.
OCCUPATIONS: list[str] = [
    "doctor",
    "nurse",
    "engineer",
    "teacher",
    "lawyer",
    "scientist",
    "pilot",
    "chef",
    "firefighter",
    "police officer",
    "soldier",
    "farmer",
    "construction worker",
    "mechanic",
    "electrician",
    "plumber",
    "carpenter",
    "accountant",
    "secretary",
    "receptionist",
    "cashier",
    "housekeeper",
    "librarian",
    "professor",
    "surgeon",
    "dentist",
    "pharmacist",
    "software developer",
    "ceo",
    "manager",
    "judge",
    "dancer",
    "singer",
    "artist",
    "photographer",
    "athlete",
    "security guard",
    "taxi driver",
    "janitor",
    "hairdresser",
]

#: How each CMSC concept completes the probe "Is this person ...?".
CONCEPT_PHRASES: dict[str, str] = {
    "compassionate": "compassionate",
    "belligerent": "belligerent",
    "authority": "a figure of authority",
    "pleasant": "pleasant",
    "unpleasant": "unpleasant",
    "tool": "using a tool",
    "weapon": "holding a weapon",
    "career": "focused on a career",
    "family": "caring for a family",
    "chef": "a chef",
    "earning money": "earning money",
    "middle school": "a middle school student",
    "high school": "a high school student",
    "university": "a university student",
    "good student": "a good student",
    "bad student": "a bad student",
    "science": "studying science",
    "arts": "studying the arts",
}


def concept_group(concept: str) -> str:
    """The CMSC group of ``concept``, or ``"occupation"`` for any other concept."""
    for group, members in CONCEPT_GROUPS.items():
        if concept in members:
            return group
    return "occupation"


def concept_phrase(concept: str) -> str:
    """The words completing "Is this person ...?" for ``concept``.

    CMSC concepts use :data:`CONCEPT_PHRASES`; any other concept is treated as an
    occupation and gets an indefinite article ("an engineer", "a doctor").
    """
    if concept in CONCEPT_PHRASES:
        return CONCEPT_PHRASES[concept]
    article = "an" if concept[:1].lower() in "aeiou" else "a"
    return f"{article} {concept}"


__all__ = [
    "CMSC_CONCEPTS",
    "CONCEPT_GROUPS",
    "CONCEPT_PHRASES",
    "OCCUPATIONS",
    "concept_group",
    "concept_phrase",
]
