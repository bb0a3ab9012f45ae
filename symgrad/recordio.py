"""``mx.recordio``: MXNet RecordIO files (to be filled)."""
