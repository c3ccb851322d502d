"""Plumbing shared by data_prep, pipeline and lm: config dataclasses as CLI flags, atomic
file writes, the skip log, output locks and the list of image suffixes."""
