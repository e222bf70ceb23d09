"""Server-rendered HTML pages, with their templates and static files beside them."""
