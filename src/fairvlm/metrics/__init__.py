"""Group fairness, clinical and social-bias metrics, computed from audit records.

Formulas follow ``METHODS.md`` sections 2 and 4. Everything here is a pure function of
arrays or of a records DataFrame; no model is needed (except a reference LM for
perplexity).
"""

from fairvlm.metrics.base import Metric, mean_metric
from fairvlm.metrics.bootstrap import percentile_ci, replicate_indices
from fairvlm.metrics.clinical import (
    LabelParser,
    accuracy,
    balanced_accuracy,
    macro_f1,
    normalize_label,
    ovr_auc,
    softmax_scores,
)
from fairvlm.metrics.config import MetricsConfig
from fairvlm.metrics.disparity import classification_disparities
from fairvlm.metrics.fluency import perplexity, perplexity_metric, token_nll
from fairvlm.metrics.group import (
    AttributeReport,
    GroupMetrics,
    GroupValue,
    attribute_columns,
    es_fairclip,
    es_fairllava,
    group_report,
)
from fairvlm.metrics.io import read_records, write_metrics
from fairvlm.metrics.records import TaskRecords, compute_metrics
from fairvlm.metrics.reports import (
    METEOR_MISSING,
    bleu,
    bleu1,
    bleu4,
    meteor,
    meteor_available,
    meteor_scores,
    rouge_l,
    rouge_l_scores,
)
from fairvlm.metrics.social import (
    DEFAULT_LEXICON,
    bias_at_k,
    effective_k,
    mention_flags,
    ndkl,
    rank,
    ranking_bias,
    sentiment_scores,
    skew_at_k,
)
from fairvlm.metrics.text import keyword_regex, plural_forms

__all__ = [
    "DEFAULT_LEXICON",
    "METEOR_MISSING",
    "AttributeReport",
    "GroupMetrics",
    "GroupValue",
    "LabelParser",
    "Metric",
    "MetricsConfig",
    "accuracy",
    "attribute_columns",
    "balanced_accuracy",
    "bias_at_k",
    "bleu",
    "bleu1",
    "bleu4",
    "classification_disparities",
    "TaskRecords",
    "compute_metrics",
    "effective_k",
    "es_fairclip",
    "es_fairllava",
    "group_report",
    "keyword_regex",
    "macro_f1",
    "mean_metric",
    "mention_flags",
    "meteor",
    "meteor_available",
    "meteor_scores",
    "ndkl",
    "normalize_label",
    "ovr_auc",
    "percentile_ci",
    "perplexity",
    "perplexity_metric",
    "plural_forms",
    "rank",
    "ranking_bias",
    "read_records",
    "replicate_indices",
    "rouge_l",
    "rouge_l_scores",
    "sentiment_scores",
    "skew_at_k",
    "softmax_scores",
    "token_nll",
    "write_metrics",
]
