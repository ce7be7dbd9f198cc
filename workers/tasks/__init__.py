"""Celery tasks: encode (slices -> embeddings and codes), train (events -> ranker), maintenance."""
