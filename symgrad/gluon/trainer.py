"""``gluon.Trainer`` (to be filled)."""
