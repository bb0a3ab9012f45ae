"""``mx.io``: data iterators (to be filled)."""
