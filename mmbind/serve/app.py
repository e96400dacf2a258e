"""The explorer on the web: a Starlette app over an Explorer. JSON for the page, bytes for the map
and the media, the page itself and its scripts from the package's static folder.

Safe by default: only the Host names given are answered (no DNS rebinding), a POST from another
origin is refused, uploads are size-limited, source files are served only when the store records
them, and errors come back as JSON messages (the traceback stays in the server's log).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mmbind.serve.explorer import Explorer, QueryError

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
CHART_LIBRARY = STATIC / "vendor" / "plotly-gl2d.min.js"


def create_app(explorer: Explorer, hosts: Iterable[str] = ("127.0.0.1", "localhost", "[::1]")) -> Starlette:
    """The ASGI app; ``hosts`` are the Host header names it answers to."""
    if not CHART_LIBRARY.is_file():
        raise FileNotFoundError(f"{CHART_LIBRARY} is missing: run scripts/setup.sh (it installs the page's chart "
                                "library with `npm ci` in frontend/ and copies it there)")

    def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    def meta(request: Request) -> Response:
        return JSONResponse(explorer.meta())

    def map_bin(request: Request) -> Response:
        return Response(explorer.map_payload(), media_type="application/octet-stream",
                        headers={"Cache-Control": "no-cache"})

    def search(request: Request) -> Response:
        params = request.query_params
        try:
            k = int(params.get("k", "10"))
        except ValueError:
            raise QueryError(f"k={params.get('k')!r}: expected a whole number") from None
        return JSONResponse(explorer.search(params.get("q", ""), params.get("target", ""), k))

    def item(request: Request) -> Response:
        return JSONResponse(explorer.item(request.path_params["collection"], request.path_params["row"]))

    def media(request: Request) -> Response:
        content, media_type = explorer.media(request.path_params["collection"], request.path_params["row"])
        return Response(content, media_type=media_type, headers={"Cache-Control": "private, max-age=600"})

    def source_file(request: Request) -> Response:
        path = explorer.source_file(request.query_params.get("path", ""))
        if path is None:
            raise HTTPException(404, "not a source file recorded in the store")
        return FileResponse(path)

    async def upload(request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin and urlsplit(origin).netloc != request.headers.get("host"):
            raise HTTPException(403, f"uploads from another origin ({origin}) are refused")
        limit = explorer.upload_limit
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise HTTPException(413, f"the file is over the upload limit of {limit} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > limit:
                raise HTTPException(413, f"the file is over the upload limit of {limit} bytes")
        params = request.query_params
        result = await run_in_threadpool(explorer.upload, bytes(body), params.get("filename", ""),
                                         params.get("modality") or None, params.get("store") == "1")
        return JSONResponse(result)

    async def query_error(request: Request, error: Exception) -> Response:
        return JSONResponse(error.to_json(), status_code=400)

    async def http_error(request: Request, error: Exception) -> Response:
        return JSONResponse({"error": error.detail}, status_code=error.status_code)

    async def server_error(request: Request, error: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return JSONResponse({"error": f"the server could not do this ({type(error).__name__}: {error}); "
                                      "its log has the details"}, status_code=500)

    routes = [
        Route("/", index),
        Route("/api/meta", meta),
        Route("/api/map.bin", map_bin),
        Route("/api/search", search),
        Route("/api/item/{collection}/{row:int}", item),
        Route("/api/media/{collection}/{row:int}", media),
        Route("/api/upload", upload, methods=["POST"]),
        Route("/file", source_file),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts))],
        exception_handlers={QueryError: query_error, HTTPException: http_error, Exception: server_error},
    )


__all__ = ["create_app", "STATIC", "CHART_LIBRARY"]
