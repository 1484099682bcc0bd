"""The words for true and false, the same for hyperparameters (SageMaker sends them as strings: the SDK
writes Python's True as "True", ModelTrainer JSON's "true") and for the serving image's environment."""

from __future__ import annotations

TRUE_WORDS = ("true", "1", "yes", "y", "on")
FALSE_WORDS = ("false", "0", "no", "n", "off")


def parse_bool(text: str) -> bool:
    """True or False for any word above, in any case, spaces around it ignored; ValueError otherwise."""
    word = str(text).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"expected true or false, got {text!r}")
