"""Pure numerics of ctae. Kept empty so that importing ctae_core.io does not import torch."""
