"""``gluon.nn``: neural-network layers (to be filled)."""
