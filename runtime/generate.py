"""Kept for existing imports: text generation now lives in ``edgernn.runtime.apps.textgen``."""

from edgernn.runtime.apps.textgen import generate, sample, vocabulary

__all__ = ["generate", "sample", "vocabulary"]
