"""Interactive API docs at ``/api/docs``: Swagger UI reading ``/api/openapi.json``.

The UI's assets come from the ``swagger-ui-py`` package (Swagger UI 5, which reads
OpenAPI 3.1) and are served by this listener, so the docs work offline and the page
makes no request elsewhere; the only script of ours is ``docs.js``, the initializer.
Readable with the admin token or a signed-in web session (``auth``), like the
document itself: a browser cannot send a bearer token on a page load. "Try it out"
needs the token (Authorize): the session never authorizes the rest of the API.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aiohttp import web

from monitor.web.errors import NotFound

DOCS_PATH = "/api/docs"
SWAGGER_UI = Path(str(resources.files("swagger_ui"))) / "static"
# Only what the page loads; the package's other files (its editor) stay unserved.
ASSETS = {
    "swagger-ui.css": SWAGGER_UI / "swagger-ui.css",
    "swagger-ui-bundle.js": SWAGGER_UI / "swagger-ui-bundle.js",
    "favicon-32x32.png": SWAGGER_UI / "favicon-32x32.png",
    "docs.js": Path(__file__).with_name("docs.js"),
}
ASSET_MAX_AGE_S = 24 * 3600
PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>API · Postback Monitor</title>
<link rel="icon" type="image/png" href="{DOCS_PATH}/assets/favicon-32x32.png">
<link rel="stylesheet" href="{DOCS_PATH}/assets/swagger-ui.css">
<script src="{DOCS_PATH}/assets/swagger-ui-bundle.js" defer></script>
<script src="{DOCS_PATH}/assets/docs.js" defer></script>
</head>
<body>
<p><a href="/endpoints">Postback Monitor</a> · API document:
<a href="/api/openapi.json">/api/openapi.json</a></p>
<div id="swagger-ui"></div>
</body>
</html>
"""


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html", headers={"Cache-Control": "no-store"})


async def docs_asset(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    path = ASSETS.get(name)
    if path is None:
        raise NotFound("not_found", f"no docs asset {name[:40]!r}")
    return web.FileResponse(path, headers={"Cache-Control": f"private, max-age={ASSET_MAX_AGE_S}"})


def add_routes(app: web.Application) -> None:
    app.router.add_get(DOCS_PATH, docs_page)
    app.router.add_get(DOCS_PATH + "/assets/{name}", docs_asset)
