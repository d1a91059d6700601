"""The 1-D study of Section 6.1: a Gaussian EBM fitted to a Gaussian mixture (Table 5, Figures 1-4)."""
