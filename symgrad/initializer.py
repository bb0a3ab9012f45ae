"""``mx.init`` / ``mx.initializer``: weight initializers (to be filled)."""
