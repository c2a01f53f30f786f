"""Serve fakeredis over TCP for the demo when no real Redis can be had.

Usage: python scripts/fake_redis_server.py PORT
"""

import sys

from fakeredis import TcpFakeServer


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 6379
    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    server.serve_forever()


if __name__ == "__main__":
    main()
