"""``mx.lr_scheduler``: learning-rate schedules (to be filled)."""
