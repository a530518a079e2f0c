"""The graph variants of the before/after study (``graph_optimizations.py``): the forms the
exported graph was measured against, kept beside their benchmark and out of the product."""

from .forms import VARIANTS, GraphVariant, build_variant, variant
from .measure import measure_variants, variant_names

__all__ = ["VARIANTS", "GraphVariant", "build_variant", "measure_variants", "variant", "variant_names"]
