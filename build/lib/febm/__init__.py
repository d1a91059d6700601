"""f-EBM: training energy-based models with any f-divergence (Yu et al., ICML 2020)."""

__version__ = "0.1.0"
