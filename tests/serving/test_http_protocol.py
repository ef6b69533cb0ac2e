"""An answer's writes reach the socket in one call, in order; nothing is lost on close."""

from __future__ import annotations

import asyncio
import socket

from creditops.serving import http_protocol
from creditops.serving.http_protocol import CoalescingTransport


class Recorder:
    """The socket end of a transport: what reached it, call by call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[bytes]]] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", [data]))

    def writelines(self, data: list[bytes]) -> None:
        self.calls.append(("writelines", list(data)))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True
        self.calls.append(("close", []))

    def get_extra_info(self, name: str) -> str:
        return f"info {name}"


def test_writes_of_one_turn_are_one_call_in_order() -> None:
    async def go() -> Recorder:
        recorder = Recorder()
        transport = CoalescingTransport(recorder, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b'{"a": 1}')
        assert recorder.calls == []  # kept until the end of this turn
        await asyncio.sleep(0)
        transport.write(b"next answer")
        await asyncio.sleep(0)
        assert transport.get_extra_info("peername") == "info peername"  # the rest: forwarded
        return recorder

    recorder = asyncio.run(go())
    assert recorder.calls == [
        ("writelines", [b"HTTP/1.1 200 OK\r\n\r\n", b'{"a": 1}']),
        ("writelines", [b"next answer"]),
    ]


def test_close_sends_what_is_kept_first() -> None:
    async def go() -> Recorder:
        recorder = Recorder()
        transport = CoalescingTransport(recorder, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"last words")
        transport.close()
        await asyncio.sleep(0)  # the scheduled flush finds nothing left
        return recorder

    assert asyncio.run(go()).calls == [("writelines", [b"last words"]), ("close", [])]


def test_on_a_closed_loop_a_write_goes_straight_through() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    recorder = Recorder()
    CoalescingTransport(recorder, loop).write(b"late")  # type: ignore[arg-type]
    assert recorder.calls == [("write", [b"late"])]


def test_a_real_server_answers_through_the_protocol() -> None:
    """uvicorn with this protocol, on loopback: two keep-alive requests, two whole answers."""
    import uvicorn

    async def app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        if scope["type"] != "http":
            return
        body = b"x" * 100_000 if scope["path"] == "/big" else b"ok"
        await send(  # type: ignore[operator]
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})  # type: ignore[operator]

    assert http_protocol.protocol_class() != "auto"  # httptools is a dependency
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=http_protocol.protocol_class(), log_level="warning"
    )
    server = uvicorn.Server(config)

    async def go() -> list[bytes]:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answers = []
        for path in ("/small", "/big"):
            writer.write(f"GET {path} HTTP/1.1\r\nhost: t\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            answers.append(head.split(b"\r\n")[0] + b" " + await reader.readexactly(length))
        writer.close()
        server.should_exit = True
        await task
        return answers

    small, big = asyncio.run(go())
    assert small == b"HTTP/1.1 200 OK ok"
    assert big == b"HTTP/1.1 200 OK " + b"x" * 100_000
