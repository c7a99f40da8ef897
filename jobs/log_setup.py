"""How the `ctae` commands log: key=value lines to stderr."""

from __future__ import annotations

import logging


def configure_logging(verbose: bool = False) -> None:
    """Key=value log lines to stderr; called only by the CLI entry points."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
