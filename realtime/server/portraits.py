"""A face per session: the portraits in `--portraits DIR` and the ones controllers upload, each enrolled and given
its renderer off the event loop (one thread: dlib and the renderer's set-up take about a second), cached by
content under a memory budget (least recently used first out; the sessions using one keep it alive).

    GET  /api/portraits           -> {"portraits": [{"name", "url", "source"}]}
    GET  /portraits/NAME          -> the image
    POST /api/portraits           -> 201 {"portrait": NAME, "url"}   (controllers; an image body, size-limited)
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import re
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from realtime.server.protocol import ProtocolError

log = logging.getLogger(__name__)
IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 4096 * 4096  # a decoded upload larger than this is refused (decompression bombs)
MAX_UPLOADS = 64
DEFAULT = "default"  # the server's own portrait (--image)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class PortraitError(ProtocolError):
    """An unknown portrait, or an image that cannot be one (its text says which)."""


def _size(obj: Any) -> int:
    """Bytes held by a renderer's arrays and tensors (its attributes, one level down)."""
    total = 0
    for value in vars(obj).values():
        if hasattr(value, "nbytes"):
            total += int(value.nbytes)
        elif hasattr(value, "element_size") and hasattr(value, "nelement"):
            total += int(value.element_size() * value.nelement())
    return total


def decode_image(data: bytes):
    """Upload bytes -> a PIL image, with the enrolment's error for what is not an image."""
    from PIL import Image, UnidentifiedImageError

    from realtime.avatar.enrol import ImageReadError

    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_PIXELS:
            raise ImageReadError(f"the image is {image.width}x{image.height}; at most {MAX_PIXELS} pixels")
        return image.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ImageReadError(f"not an image file that can be read: {exc}") from None


class PortraitGallery:
    def __init__(self, folder: Path | None, render_config: Any, budget_mb: float = 512.0, default: Any = None):
        """`default`: the server's own parts (`portrait`, `renderer()`), listed and chosen as "default"."""
        self.default = default
        self._default_png: bytes | None = None
        self.folder = Path(folder) if folder is not None else None
        if self.folder is not None and not self.folder.is_dir():
            raise ValueError(f"--portraits {self.folder} is not a folder")
        self.render_config, self.budget = render_config, int(budget_mb * 1024 * 1024)
        self.uploads: OrderedDict[str, bytes] = OrderedDict()  # name -> image bytes (newest last)
        self._renderers: OrderedDict[str, tuple[Any, int]] = OrderedDict()  # content hash -> (renderer, bytes)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="enrol")
        self._lock = asyncio.Lock()

    # --- what there is ---------------------------------------------------------------------------------
    def _files(self) -> dict[str, Path]:
        if self.folder is None:
            return {}
        return {p.stem: p for p in sorted(self.folder.iterdir())
                if p.suffix.lower() in IMAGE_TYPES and p.is_file() and NAME.match(p.stem)}

    def listing(self) -> list[dict[str, str]]:
        entries = [{"name": DEFAULT, "url": f"/portraits/{DEFAULT}", "source": "server"}] if self.default else []
        entries += [{"name": n, "url": f"/portraits/{n}", "source": "gallery"} for n in self._files() if n != DEFAULT]
        return entries + [{"name": n, "url": f"/portraits/{n}", "source": "upload"} for n in self.uploads]

    def image(self, name: str) -> tuple[bytes, str]:
        """-> (bytes, content type) of a portrait's image."""
        if name == DEFAULT and self.default is not None:
            if self._default_png is None:
                from PIL import Image

                out = io.BytesIO()
                Image.fromarray(self.default.portrait.image).save(out, format="PNG")  # the enrolled crop
                self._default_png = out.getvalue()
            return self._default_png, "image/png"
        if name in self.uploads:
            return self.uploads[name], _sniff(self.uploads[name])
        path = self._files().get(name)
        if path is None:
            raise PortraitError(f"no portrait {name!r} (GET /api/portraits lists them)")
        return path.read_bytes(), IMAGE_TYPES[path.suffix.lower()]

    # --- renderers -------------------------------------------------------------------------------------
    async def renderer(self, name: str):
        """The renderer of portrait `name`, enrolled and set up off the loop on first use."""
        if name == DEFAULT and self.default is not None:
            return self.default.renderer()
        data, _ = self.image(name)
        key = hashlib.sha256(data).hexdigest()
        async with self._lock:  # one enrolment at a time; a second request for the same face waits for it
            if key in self._renderers:
                self._renderers.move_to_end(key)
                return self._renderers[key][0]
            loop = asyncio.get_running_loop()
            renderer = await loop.run_in_executor(self._pool, self._build, data)
            self._renderers[key] = (renderer, _size(renderer))
            while len(self._renderers) > 1 and sum(size for _, size in self._renderers.values()) > self.budget:
                self._renderers.popitem(last=False)
            return renderer

    def _build(self, data: bytes):
        from realtime.avatar import Renderer, enrol

        portrait = enrol(decode_image(data))
        return Renderer(portrait, self.render_config).setup()

    async def upload(self, data: bytes) -> str:
        """Validates `data` by enrolling it (clear errors: not an image, no face, face too small); -> its name."""
        if len(data) > MAX_UPLOAD_BYTES:
            raise PortraitError(f"the upload is {len(data)} bytes; the limit is {MAX_UPLOAD_BYTES}")
        name = "upload-" + hashlib.sha256(data).hexdigest()[:16]
        if name not in self.uploads:
            self.uploads[name] = data
            try:
                await self.renderer(name)
            except ValueError as exc:  # EnrolmentError and its kinds
                del self.uploads[name]
                raise PortraitError(str(exc)) from None
            while len(self.uploads) > MAX_UPLOADS:
                self.uploads.popitem(last=False)
        return name

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    return "image/webp" if data[8:12] == b"WEBP" else "application/octet-stream"


def routes(app, gallery: PortraitGallery, token: str | None) -> None:
    """The gallery's HTTP side (aiohttp): listing, images, uploads by controllers."""
    from aiohttp import web

    from realtime.server.whip import read_limited, require_bearer

    async def listing(request: web.Request) -> web.Response:
        return web.json_response({"portraits": gallery.listing()})

    async def image(request: web.Request) -> web.Response:
        try:
            data, kind = gallery.image(request.match_info["name"])
        except PortraitError as exc:
            raise web.HTTPNotFound(text=f"{exc}\n") from None
        return web.Response(body=data, content_type=kind, headers={"Cache-Control": "no-cache"})

    async def upload(request: web.Request) -> web.Response:
        require_bearer(request, token, loopback_without_token=True)
        if not request.content_type.startswith("image/"):
            raise web.HTTPUnsupportedMediaType(text="send the portrait as its image bytes (Content-Type image/...)\n")
        data = await read_limited(request, MAX_UPLOAD_BYTES)
        try:
            name = await gallery.upload(data)
        except PortraitError as exc:
            status = web.HTTPRequestEntityTooLarge if len(data) > MAX_UPLOAD_BYTES else web.HTTPUnprocessableEntity
            if status is web.HTTPRequestEntityTooLarge:
                raise status(MAX_UPLOAD_BYTES, len(data), text=f"{exc}\n") from None
            raise status(text=f"{exc}\n") from None
        return web.json_response({"portrait": name, "url": f"/portraits/{name}"}, status=201)

    app.router.add_get("/api/portraits", listing)
    app.router.add_get("/portraits/{name}", image)
    app.router.add_post("/api/portraits", upload)
