"""The HTTP protocol ``serve`` runs: uvicorn's, with a cap on the request line and headers.

uvicorn's fast parser (httptools) buffers headers of any size, before the application sees a
request — so before a signature can be checked, anyone could make the server hold megabytes
per connection. This subclass refuses a request whose line and headers pass
:data:`~engine.runtime.delivery.MAX_HEADER_BYTES` (400, connection closed). Without httptools,
uvicorn's pure-Python h11 parser is used with the same cap.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..runtime.delivery import MAX_HEADER_BYTES

__all__ = ["HEAD_WITHIN", "http_options"]

#: Seconds a client has to send a request's line and headers once it connects (or once its
#: previous request on the connection was answered).
HEAD_WITHIN = 10.0


def http_options() -> dict[str, Any]:
    """uvicorn settings for the HTTP protocol: the capped httptools protocol when installed,
    else h11 with its own cap."""
    try:
        import httptools
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return {"http": "h11", "h11_max_incomplete_event_size": MAX_HEADER_BYTES}

    class CappedHttpTools(HttpToolsProtocol):
        """Counts the bytes of each request's line and headers as they arrive (httptools
        buffers a header it has not finished), and gives a client ``HEAD_WITHIN`` seconds to
        send them: a refusal or a closed connection, not a slot held forever."""

        _head_bytes = 0  # raw bytes of a head not yet complete
        _parsed_bytes = 0  # the line and headers the parser has handed over
        _in_head = True
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            self._wait_for_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_waiting()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._in_head and not self.transport.is_closing():  # all of it was head
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEADER_BYTES:
                    self._stop_waiting()
                    self.send_400_response(
                        f"request line and headers over {MAX_HEADER_BYTES:,} bytes"
                    )

        def on_message_begin(self) -> None:
            self._head_bytes, self._parsed_bytes, self._in_head = 0, 0, True
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._stop_waiting()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._wait_for_head()  # a kept-alive connection waits for its next request

        def _wait_for_head(self) -> None:
            self._stop_waiting()
            self._head_bytes, self._in_head = 0, True
            self._head_timer = asyncio.get_running_loop().call_later(HEAD_WITHIN, self._too_slow)

        def _stop_waiting(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _too_slow(self) -> None:
            self._head_timer = None
            if self._in_head and not self.transport.is_closing():
                self.transport.close()

        def _count(self, size: int) -> None:
            self._parsed_bytes += size
            if self._parsed_bytes > MAX_HEADER_BYTES:
                raise httptools.HttpParserError(
                    f"request line and headers over {MAX_HEADER_BYTES:,} bytes"
                )

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)
            super().on_header(name, value)

    return {"http": CappedHttpTools}
