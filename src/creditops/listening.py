"""Whether an address can be listened on, checked before a server says it serves there.

uvicorn and ``mlflow server`` report a host that does not resolve or a port
in use as a bare ``[Errno -2] Name or service not known`` after the start-up
log line has already claimed the address; :func:`check_address` names the
setting, the value and the reason first, with nothing started.
"""

from __future__ import annotations

import socket

from creditops.errors import ConfigError


def check_address(host: str, port: int, setting: str) -> None:
    """Bind ``host``:``port`` once (and let go), or say why it cannot be listened on.

    Args:
        setting: where the address comes from, for the message (e.g. ``[serve] host/port``).

    Raises:
        ConfigError: the host does not resolve, or the address cannot be bound
            (in use, not an address of this machine, a privileged port).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (OSError, UnicodeError) as exc:
        raise ConfigError(
            f"cannot listen on {host!r} ({setting}): the host does not resolve: {_reason(exc)}"
        ) from None
    try:
        with socket.socket(family, kind, proto) as probe:
            # as uvicorn binds: a port whose old connections linger in TIME_WAIT is free
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host!r} port {port} ({setting}): {_reason(exc)}"
        ) from None


def _reason(exc: BaseException) -> str:
    return str(exc.strerror) if isinstance(exc, OSError) and exc.strerror else str(exc)
