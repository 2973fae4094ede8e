"""Samples, datasets, readers for public formats and counterfactual sets."""

from fairvlm.data.concepts import CMSC_CONCEPTS, CONCEPT_GROUPS, OCCUPATIONS
from fairvlm.data.counterfactual import (
    CompletenessReport,
    assign_counterfactual_sets,
    balance,
    check_completeness,
)
from fairvlm.data.jsonl import read_jsonl, write_jsonl
from fairvlm.data.llava_json import read_llava_json, write_llava_json
from fairvlm.data.readers import READERS, ReadResult, get_reader, import_dataset
from fairvlm.data.schema import Sample
from fairvlm.data.storage import (
    METADATA_FILE,
    dataset_metadata,
    load_dataset,
    load_samples,
    open_image_bytes,
    samples_from_dataset,
    save_dataset,
)

__all__ = [
    "CMSC_CONCEPTS",
    "CONCEPT_GROUPS",
    "METADATA_FILE",
    "OCCUPATIONS",
    "READERS",
    "CompletenessReport",
    "ReadResult",
    "Sample",
    "assign_counterfactual_sets",
    "balance",
    "check_completeness",
    "dataset_metadata",
    "get_reader",
    "import_dataset",
    "load_dataset",
    "load_samples",
    "open_image_bytes",
    "read_jsonl",
    "read_llava_json",
    "samples_from_dataset",
    "save_dataset",
    "write_jsonl",
    "write_llava_json",
]
