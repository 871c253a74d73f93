#!/usr/bin/env python3
"""The demo's stand-in for the managers' inboxes: an Alertmanager webhook
receiver on loopback. Each POST (one notification, a group of alerts) is
appended to OUT as a JSON line {"path": "/<user id>", "body": {...}}.

    webhook_receiver.py --port-file FILE --out FILE

It listens on a free port of 127.0.0.1 and writes that port to --port-file
once it listens. Stops on SIGTERM or SIGINT.
"""
import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    lock = threading.Lock()
    out = open(args.out, "a", encoding="utf-8")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                note = {"path": self.path, "body": json.loads(body)}
            except ValueError:
                self.send_response(400)
                self.end_headers()
                return
            with lock:
                out.write(json.dumps(note, ensure_ascii=False) + "\n")
                out.flush()
            self.send_response(200)
            self.end_headers()

        def log_message(self, fmt, *a):  # quiet: the notifications are the log
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(args.port_file, "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))

    def stop(*_):
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
