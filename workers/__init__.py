"""The workers between mail in and mail out: dramatiq actors and periodic sweeps."""
