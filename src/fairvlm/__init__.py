"""fairvlm: audit vision-language models for demographic and social bias, and remove it."""

__version__ = "0.1.0"

__all__ = ["__version__"]
