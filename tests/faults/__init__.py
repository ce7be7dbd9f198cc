"""Fault suite: hostile input, crashes and damaged files, with real processes and files."""
