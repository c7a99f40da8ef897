"""Limits on one input's ingest, shared by the job's options and its workers (a module of its
own, so that the job's parent process reads them without importing the readers)."""

INPUT_TIMEOUT_S = 600.0
"""Default time box of one input (a 1,000-slice series takes well under a minute)."""
