"""A TCP forwarder for fault injection at the protocol: cut, hold or drop traffic."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable

from tests.conftest import free_port


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; can refuse, cut, or mute replies."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.mute_replies = threading.Event()   # server->client bytes are swallowed
        self._open = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def start(self) -> TcpProxy:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._open.set()
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while self._open.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, is_reply: bool) -> None:
        try:
            while data := src.recv(65536):
                if is_reply and self.mute_replies.is_set():
                    continue
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        """Drop every open connection and refuse new ones."""
        self._open.clear()
        if self._listener:
            # shutdown() wakes the thread blocked in accept(); close() alone
            # would leave the socket listening until that call returns.
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        with self._lock:
            for s in self._conns:
                # shutdown() sends the FIN at once; close() alone would wait
                # for the pump threads still reading the socket.
                for end in (lambda: s.shutdown(socket.SHUT_RDWR), s.close):
                    try:
                        end()
                    except OSError:
                        pass
            self._conns.clear()

    def restore(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._open.set()
        threading.Thread(target=self._accept, daemon=True).start()


# An IMAP literal announced at the end of a line (RFC 3501 section 4.3; the `+` of LITERAL+, RFC 7888).
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")


def read_imap_response(reader) -> bytes:
    """One whole server response from a buffered reader: its line, with each literal and the line after it."""
    response = line = reader.readline()
    while line and (literal := _LITERAL.search(line)):
        response += reader.read(int(literal.group(1)))
        line = reader.readline()
        response += line
    return response


class ImapReplyFilter(TcpProxy):
    """A TcpProxy that reads the server's replies as IMAP responses, swallows those `drop` picks and passes the
    others through `change(command, response)`, the bytes sent on in its place (`command`: the last the client
    sent; imapclient sends a command in pieces, its CRLF alone).

    The rest of the protocol passes as it is: a FETCH answered OK, say,
    but without one of the messages asked for, as Exchange does under load.
    """

    def __init__(self, target_host: str, target_port: int, drop: Callable[[bytes], bool] = lambda response: False,
                 change: Callable[[bytes, bytes], bytes] | None = None) -> None:
        super().__init__(target_host, target_port)
        self.drop, self.change = drop, change
        self.dropped: list[bytes] = []
        self.command = b""

    def _pump(self, src: socket.socket, dst: socket.socket, is_reply: bool) -> None:
        if not is_reply and self.change is None:
            return super()._pump(src, dst, is_reply)
        try:
            if is_reply:
                self._replies(src, dst)
            else:
                self._commands(src, dst)
        except (OSError, ValueError):
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _commands(self, src: socket.socket, dst: socket.socket) -> None:
        line = b""
        while data := src.recv(65536):
            line += data
            if line.endswith(b"\r\n"):
                self.command, line = line, b""
            dst.sendall(data)

    def _replies(self, src: socket.socket, dst: socket.socket) -> None:
        reader = src.makefile("rb")
        while response := read_imap_response(reader):
            if self.drop(response):
                self.dropped.append(response)
                continue
            dst.sendall(response if self.change is None else self.change(self.command, response))
