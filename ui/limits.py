"""What the server reads of a request before anything parses it: `RequestLimits`, an ASGI middleware.

Gradio parses a JSON body whole before an event sees it (a 150 MB body took 4.6 s before being
refused), and takes uploads of up to `max_file_size` from anyone, which it then serves back. So
every request body is counted as it arrives and refused with 413 the moment it passes its limit
(at once when its Content-Length says it will), and where the app shows no upload component
(`--mode survey`) the upload routes answer 403 without reading anything. Plain ASGI, no Gradio.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

UPLOAD_PATHS = ("/upload", "/gradio_api/upload", "/gradio_api/process_recording")
TOO_LARGE = "The request is too large."
NO_UPLOADS = "Uploads are off here."


class _TooLarge(Exception):
    pass


class RequestLimits:
    """Refuse request bodies over `max_body_bytes` (uploads: `max_upload_bytes`) before the app reads
    them, and every upload when `max_upload_bytes` is 0."""

    def __init__(self, app: Callable, *, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope.get("path", "").rstrip("/").endswith(UPLOAD_PATHS)
        if upload and self.max_upload_bytes <= 0:
            await _plain(send, 403, NO_UPLOADS)
            return
        limit = self.max_upload_bytes if upload else self.max_body_bytes
        declared = next((value for name, value in scope.get("headers", ()) if name == b"content-length"), None)
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _plain(send, 413, TOO_LARGE)
            return
        seen = 0
        started = False

        async def counted_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:  # a chunked body that said nothing of its size
                    raise _TooLarge
            return message

        async def watched_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _TooLarge:
            if not started:
                await _plain(send, 413, TOO_LARGE)


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
