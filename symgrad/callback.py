"""``mx.callback``: training callbacks (to be filled)."""
