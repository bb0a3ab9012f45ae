"""``gluon.loss``: losses (to be filled)."""
