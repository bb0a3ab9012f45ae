"""``mx.metric``: evaluation metrics (to be filled)."""
