"""Gluon Blocks (to be filled)."""
