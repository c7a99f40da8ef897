"""Thin batch jobs and the `ctae` command line."""
