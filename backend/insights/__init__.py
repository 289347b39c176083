"""Shop insights: the search log (SQLite), its aggregates and its exports; no web framework."""
