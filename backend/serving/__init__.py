"""Running the app as a server: the start-up sync and each worker's load (`boot`), the nginx
front that buffers requests for gunicorn (`front`), and the models exported at build time
(`export_models`). Nothing below the app factory imports this package."""
