"""smsgate benchmarks: runnable scripts, not tests (see README.md)."""
