"""Request-head limits for uvicorn's httptools protocol: header count and head size, 431 beyond.

NB: llhttp (httptools) has no limit of its own: a client could send headers
for ever and uvicorn would keep every byte. uvicorn's only head limit,
``h11_max_incomplete_event_size``, applies to the pure-Python h11 protocol,
which would cost the order path and the liveness probe a good part of their
throughput. So the httptools protocol uvicorn picks is extended here, through
uvicorn's own hook for it (``Config(http=<protocol class>)``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger(__name__)

_STATUS_LINE: Final = b"HTTP/1.1 431 Request Header Fields Too Large\r\n"


class HeadTooLargeError(Exception):
    """Raised inside a parser callback; httptools turns it into a parse error."""


def bounded_httptools(*, max_headers: int, max_head_bytes: int) -> type[asyncio.Protocol]:
    """Return uvicorn's httptools protocol answering 431 past ``max_headers`` or ``max_head_bytes``.

    ``max_head_bytes`` counts the target URL and every header name and value.
    A head still incomplete after that many bytes is refused as soon as the
    read that crossed the limit is parsed, so no more than one read (64 KiB
    at most) beyond it is ever held.
    """

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        _awaiting_head = True
        _received_in_head = 0
        _head_bytes = 0
        _refusal: str | None = None

        def data_received(self, data: bytes) -> None:
            if self._awaiting_head:
                self._received_in_head += len(data)
            super().data_received(data)
            if (
                self._refusal is None
                and self._awaiting_head
                and self._received_in_head > max_head_bytes
                and not self.transport.is_closing()
            ):
                self._refusal = f"request head over {max_head_bytes} bytes"
                self._send_431()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._awaiting_head = True
            self._head_bytes = 0

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value))
            if len(self.headers) >= max_headers:
                self._refuse(f"more than {max_headers} headers")
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._awaiting_head = False
            self._received_in_head = 0
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._awaiting_head = True

        def send_400_response(self, msg: str) -> None:
            if self._refusal is None:
                super().send_400_response(msg)
            else:
                self._send_431()

        def _count(self, size: int) -> None:
            self._head_bytes += size
            if self._head_bytes > max_head_bytes:
                self._refuse(f"request head over {max_head_bytes} bytes")

        def _refuse(self, reason: str) -> None:
            self._refusal = reason
            raise HeadTooLargeError(reason)

        def _send_431(self) -> None:
            reason = self._refusal or "request head too large"
            logger.warning("Refused a request: %s", reason, extra={"client": str(self.client)})
            body = json.dumps({"detail": reason}).encode()
            self.transport.write(
                b"".join(
                    [
                        _STATUS_LINE,
                        b"content-type: application/json\r\n",
                        b"content-length: %d\r\n" % len(body),
                        b"connection: close\r\n\r\n",
                        body,
                    ]
                )
            )
            self.transport.close()

    return BoundedHttpToolsProtocol
