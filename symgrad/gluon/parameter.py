"""Gluon Parameters (to be filled)."""
