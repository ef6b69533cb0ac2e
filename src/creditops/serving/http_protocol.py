"""uvicorn's httptools protocol, with each answer's writes sent in one system call.

uvicorn writes an answer's status line and headers when the app sends
``http.response.start``, and its body on ``http.response.body``: two
``write`` calls on the socket, each a system call made holding the interpreter
lock, and on loopback each one runs the receiver's TCP path too. For a
one-applicant ``/predict`` the two writes took about a third of the event
loop's time under load. :class:`CoalescingTransport` keeps the writes of one
turn of the event loop and hands them to the socket together
(``writelines``, one ``writev``) at the end of the turn: same bytes, same
order, one call.

:func:`protocol_class` is the ``http`` option given to uvicorn: this protocol
when httptools is installed, else uvicorn's own choice (``auto``).
"""

from __future__ import annotations

import asyncio
from typing import Any


class CoalescingTransport:
    """A transport whose writes within one turn of the loop reach the socket in one call.

    Everything but ``write`` and ``close`` is the wrapped transport's own;
    ``close`` sends what is kept first.
    """

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._pending is not None:
            self._pending.append(data)
            return
        try:
            self._loop.call_soon(self._flush)
        except RuntimeError:  # the loop is closed: nothing later will flush
            self._transport.write(data)
            return
        self._pending = [data]

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.writelines(pending)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # no httptools: uvicorn picks h11
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


def protocol_class() -> type[asyncio.Protocol] | str:
    """The ``http`` option for uvicorn: the coalescing httptools protocol, else ``auto``."""
    return "auto" if HttpToolsProtocol is None else CoalescingHttpToolsProtocol


if HttpToolsProtocol is not None:

    class CoalescingHttpToolsProtocol(HttpToolsProtocol):  # type: ignore[misc,valid-type]
        """uvicorn's httptools protocol on a :class:`CoalescingTransport`."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            wrapped = CoalescingTransport(transport, asyncio.get_running_loop())
            super().connection_made(wrapped)  # type: ignore[arg-type]
