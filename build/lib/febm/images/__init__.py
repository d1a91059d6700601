"""The image study of Section 6.2: CIFAR-10 (conditional) and CelebA 32x32 (unconditional)."""
