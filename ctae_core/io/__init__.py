"""The only part of ctae_core that touches files."""
