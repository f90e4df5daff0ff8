"""Library code every layer may use: user errors, atomic file writes and exact int64 batches
of rows (`int64_rows`). Imports nothing of einsum_opt."""
