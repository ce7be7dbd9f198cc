"""The serving pipeline: room cache, retrieval, ranking, re-ranking, in-session state."""
