"""Library code every layer may use: user errors and atomic file writes. Imports nothing of
einsum_opt."""
