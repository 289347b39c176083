"""The parts `SearchService` (backend/search.py) composes, each importing only those below it.

From the bottom: `results` (what a search returns), `runtime` (settings, the model, the store and
the state the parts share), `lifecycle` (sync, load, reload, pack), then `media`, `ranking` and
`edits`. None imports the facade.
"""
