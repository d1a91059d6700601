"""Image evaluation: Inception Score and FID on pytorch-fid's Inception, the paper's sampling protocol."""
