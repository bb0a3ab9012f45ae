"""``gluon.data``: datasets, samplers, DataLoader (to be filled)."""
