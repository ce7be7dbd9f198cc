"""Vision backends (SigLIP, open_clip) and the text/fusion tower, each loaded from local files."""
