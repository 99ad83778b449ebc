#!/usr/bin/env python3
"""A tiny OAuth 2.0 provider for the README examples (scripts/readme-examples).

It stands in for Zoho's accounts server on a loopback port, with Zoho's paths:
  GET  /oauth/v2/auth          the "consent page": approves at once, redirecting the browser
                               to redirect_uri with a fresh code and the caller's state
  POST /oauth/v2/token         authorization_code, refresh_token and client_credentials grants; answers tokens
                               that expire in an hour, a new refresh token each time
  POST /oauth/v2/token/revoke  200
  GET  /status/NNN             answers NNN (the runner's self-test)
Anything else is 404. Every request is logged to stderr (no token values).

usage: fake_provider.py PORT_FILE   binds 127.0.0.1 on a free port and writes the port there
"""

import json
import secrets
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

CODES = {}  # code -> scope
REFRESH = {}  # refresh token -> scope


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("fake-provider: %s %s\n" % (self.command, self.path.split("?")[0]))

    def send(self, status, body=None, headers=()):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path.startswith("/status/"):  # for the runner's self-test
            return self.send(int(url.path[8:]), {"status": int(url.path[8:])})
        if url.path != "/oauth/v2/auth":
            return self.send(404, {"error": "not_found"})
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if query.get("response_type") != "code" or "redirect_uri" not in query or "state" not in query:
            return self.send(400, {"error": "invalid_request"})
        code = secrets.token_urlsafe(16)
        CODES[code] = query.get("scope", "")
        target = query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
        self.send(302, headers=[("Location", target)])

    def do_POST(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if url.path == "/oauth/v2/token/revoke":
            return self.send(200, {})
        if url.path != "/oauth/v2/token":
            return self.send(404, {"error": "not_found"})
        grant = form.get("grant_type")
        if grant == "authorization_code" and form.get("code") in CODES:
            scope = CODES.pop(form["code"])
        elif grant == "refresh_token" and form.get("refresh_token") in REFRESH:
            scope = REFRESH.pop(form["refresh_token"])
        elif grant == "client_credentials":
            # Machine-to-machine: a token for the client itself, never a refresh token.
            return self.send(200, {
                "access_token": secrets.token_urlsafe(24),
                "token_type": "Bearer",
                "expires_in": 3600,
                "scope": form.get("scope", ""),
            })
        else:
            return self.send(400, {"error": "invalid_grant"})
        refresh = secrets.token_urlsafe(16)
        REFRESH[refresh] = scope
        self.send(200, {
            "access_token": secrets.token_urlsafe(24),
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": scope,
            "api_domain": "https://www.zohoapis.com",
        })


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
