"""`mmbind serve`: a local web explorer of a store (docs/explorer.md). ``Explorer`` is the model
(map, queries, previews, dropped files), ``create_app`` puts it on the web (Starlette); the page
and its chart library live in ``static/``. Nothing heavy is imported here."""
