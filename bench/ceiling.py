"""The ingest ceiling: a bare aiosmtpd server that appends each mail to a file, fsyncs, answers 250."""

from __future__ import annotations

import argparse
import os
import signal
import threading

from aiosmtpd.controller import Controller


class AppendHandler:
    """Durable like the daemon's 250 (bytes on disk first), with nothing else to do."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "ab")

    async def handle_DATA(self, server, session, envelope):
        self.file.write(envelope.original_content or envelope.content)
        self.file.flush()
        os.fsync(self.file.fileno())
        return "250 2.0.0 OK"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:2526")
    parser.add_argument("--file", required=True, help="the file every mail is appended to")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    controller = Controller(AppendHandler(args.file), hostname=host, port=int(port), decode_data=False,
                            data_size_limit=26_214_400)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    controller.start()
    print("ceiling running", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
