"""index.csv, the embedding cache of record: its file format, incremental sync, and locks."""
