"""One widget per module: each receives state, renders it, and posts a message when asked to act."""
