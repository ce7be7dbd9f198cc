"""Training pairs built from research data sets, read by path."""
