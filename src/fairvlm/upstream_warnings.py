"""Warnings that upstream libraries raise from their own internals, which no fairvlm call
can avoid. The CLI filters exactly these (nothing broader), once, at its entry point, so
that a user's ``python -W error -m fairvlm ...`` run fails only on what fairvlm does.

Each entry names the upstream call; drop it once the oldest supported release of that
library no longer makes the call.
"""

from __future__ import annotations

import warnings

#: (category, message regex, the upstream call that raises it)
UNAVOIDABLE: tuple[tuple[type[Warning], str, str], ...] = (
    (
        FutureWarning,
        r"`is_gradient_checkpointing` is deprecated",
        # peft.PeftModel.__init__ reads model.is_gradient_checkpointing (peft <= 0.21.2),
        # which transformers >= 5.23 deprecated for is_activation_checkpointing.
        "peft.peft_model.PeftModel.__init__",
    ),
)


def filter_unavoidable() -> None:
    """Ignore the :data:`UNAVOIDABLE` warnings, ahead of any ``-W`` option of the user."""
    for category, message, _origin in UNAVOIDABLE:
        warnings.filterwarnings("ignore", message=message, category=category)


__all__ = ["UNAVOIDABLE", "filter_unavoidable"]
