"""Building blocks: windows, relative position, sin-cos embeddings, mixing masks, attention."""
