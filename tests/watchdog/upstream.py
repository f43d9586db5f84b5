"""Tiny HTTP/1.1 upstream for fwatchdog's http-mode tests (started BY fwatchdog as fprocess).

Paths: /hello -> "hello"; /echo -> request body back, request headers as X-Got-<name>;
/count -> streams the body in, answers its length; /pid -> its pid; /hang -> never answers;
/crash -> exits at once with status 3. Port from argv[1].
"""
import http.server
import os
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("upstream: " + (fmt % args) + "\n")

    def _body_chunks(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                left = size
                while left:
                    chunk = self.rfile.read(min(left, 65536))
                    if not chunk:
                        return
                    left -= len(chunk)
                    yield chunk
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    def _send(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._route()

    def do_POST(self):
        self._route()

    def do_PUT(self):
        self._route()

    def _route(self):
        path = self.path.split("?")[0]
        if path == "/crash":
            os._exit(3)
        if path == "/hang":
            threading.Event().wait()
        if path == "/pid":
            return self._send(200, str(os.getpid()).encode())
        if path == "/count":
            n = sum(len(c) for c in self._body_chunks())
            return self._send(200, str(n).encode())
        if path == "/echo":
            body = b"".join(self._body_chunks())
            hdrs = [("X-Got-" + k, v) for k, v in self.headers.items()]
            hdrs.append(("X-Got-Path", self.path))
            return self._send(200, body, hdrs)
        body = b"".join(self._body_chunks())
        self._send(200, b"hello")


http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
