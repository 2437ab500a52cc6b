"""fsw: frontier-stitching watermarking (Le Merrer, Perez & Tredan, 2020) as an experiment workflow."""

__version__ = "0.1.0"
