#!/usr/bin/env python3
"""A webhook receiver for core/tests/webhooks.rs and server/tests/webhook_crash.rs: verifies every request with the
`standardwebhooks` package from PyPI (an implementation independent of Latchkey's), answers as
told, and logs each request as a JSON line.

Environment: WEBHOOK_SECRET (whsec_…), FAIL_FIRST (answer 500 to the first N attempts of each
webhook-id), DELAY_SECONDS (wait before answering), LOG (the log file). Prints its port.
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = os.environ["WEBHOOK_SECRET"]
FAIL_FIRST = int(os.environ.get("FAIL_FIRST", "0"))
DELAY = float(os.environ.get("DELAY_SECONDS", "0"))
LOG = os.environ["LOG"]
seen = {}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        msg_id = self.headers.get("webhook-id", "")
        try:
            # Read per request: the test rotates the secret while the receiver runs.
            with open(LOG + ".secret") as f:
                secret = f.read().strip() or SECRET
        except FileNotFoundError:
            secret = SECRET
        try:
            event = Webhook(secret).verify(body, dict(self.headers))
            verified = True
        except WebhookVerificationError:
            event, verified = None, False
        with lock:
            attempt = seen.get(msg_id, 0) + 1
            seen[msg_id] = attempt
        status = 401 if not verified else (500 if attempt <= FAIL_FIRST else 200)
        if DELAY:
            time.sleep(DELAY)
        with lock, open(LOG, "a") as log:
            log.write(json.dumps({
                "id": msg_id, "verified": verified, "status": status, "attempt": attempt,
                "event": event, "signatures": self.headers.get("webhook-signature", "").count("v1,"),
            }) + "\n")
        self.send_response(status)
        self.send_header("content-type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok" if status == 200 else b"try again")

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    # socketserver's default backlog (5) drops connections that any real server would queue.
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # A sender cut off mid-request (the test's "dead instance"): nothing to report.
        pass


server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
