"""Data samplers, vectorised over the batch and seeded."""
