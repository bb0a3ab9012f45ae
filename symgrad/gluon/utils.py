"""``gluon.utils`` (to be filled)."""
