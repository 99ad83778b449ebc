#!/usr/bin/env python3
"""Stands in for CloudFormation's pre-signed ResponseURL on a loopback port (README, "Under
the Lambda runtime"), so that a custom-resource event can be invoked without the network.

It takes ONE PUT, answers 200 as S3 does, prints the answer's Status and Reason to stderr
(the body carries no secret: status, reason, ids, the schema version) and exits; it also
exits after TIMEOUT seconds (120) if nothing comes, so it never outlives the example.

usage: cfn_response.py PORT_FILE   binds 127.0.0.1 on a free port and writes the port there
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

TIMEOUT = 120


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        try:
            answer = json.loads(body)
            sys.stderr.write("cfn-response: %s %s\n" % (answer.get("Status"), answer.get("Reason") or ""))
        except ValueError:
            sys.stderr.write("cfn-response: a body that is not JSON (%d bytes)\n" % len(body))
        threading.Thread(target=self.server.shutdown, daemon=True).start()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    server = HTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w", encoding="ascii") as f:
        f.write(str(server.server_address[1]))
    timer = threading.Timer(TIMEOUT, server.shutdown)
    timer.daemon = True
    timer.start()
    server.serve_forever()


if __name__ == "__main__":
    main()
