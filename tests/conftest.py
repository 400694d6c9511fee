"""Suite-wide setup: the hypothesis profile (``ci`` unless ``HYPOTHESIS_PROFILE`` says)."""

from __future__ import annotations

from tests import fuzz_profiles

__all__: list[str] = []

fuzz_profiles.load()
