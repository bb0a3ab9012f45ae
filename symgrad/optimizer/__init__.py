"""``mx.optimizer``: optimizers and updaters (to be filled)."""
