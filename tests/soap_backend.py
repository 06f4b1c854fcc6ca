#!/usr/bin/env python3
"""A real SOAP backend for tests/soap.rs, built with spyne (PyPI: spyne, lxml).

Binds 127.0.0.1:0, prints its port as the first line of standard output and
serves until its standard input closes (the test process went away):

  POST /soap  PetService, SOAP 1.1 (text/xml) or SOAP 1.2
              (application/soap+xml), picked by the request's Content-Type.
              Echo(text) answers the text unchanged; GetPet(id) looks a pet
              up and raises a SOAP fault (HTTP 500) for an unknown id.
  GET /last   JSON: the last SOAP exchange exactly as this server saw it:
              the request's method, path, headers and raw body, and the
              response's status, headers and raw body (bodies in base64), so
              the test can compare bytes on both sides of the gateway.
"""

import base64
import io
import json
import logging
import os
import sys
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from spyne import Application, ComplexModel, Double, Fault, Integer, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap11, Soap12
from spyne.server.wsgi import WsgiApplication

TNS = "urn:tollgate:petstore"

PETS = {1: ("dog", 249.99), 2: ("cat", 124.99), 3: ("fish", 0.99)}


class Pet(ComplexModel):
    __namespace__ = TNS
    id = Integer
    type = Unicode
    price = Double


class PetService(ServiceBase):
    @rpc(Unicode, _returns=Unicode)
    def Echo(ctx, text):
        return text

    @rpc(Integer, _returns=Pet)
    def GetPet(ctx, id):
        if id not in PETS:
            raise Fault(faultcode="Client.PetNotFound", faultstring="pet %s not found" % id)
        kind, price = PETS[id]
        return Pet(id=id, type=kind, price=price)


def soap_app(protocol):
    app = Application(
        [PetService],
        tns=TNS,
        name="PetService",
        in_protocol=protocol(validator="lxml"),
        out_protocol=protocol(),
    )
    return WsgiApplication(app)


class Recorder:
    """Dispatches on Content-Type and keeps the last exchange's raw bytes."""

    def __init__(self):
        self.soap11 = soap_app(Soap11)
        self.soap12 = soap_app(Soap12)
        self.lock = threading.Lock()
        self.last = None

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "")
        if method == "GET" and path == "/last":
            with self.lock:
                body = json.dumps(self.last).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        if path != "/soap":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]

        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        for k in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(k):
                headers[k.replace("_", "-").lower()] = environ[k]

        content_type = environ.get("CONTENT_TYPE", "").lower()
        app = self.soap12 if content_type.startswith("application/soap+xml") else self.soap11
        seen = {}

        def collect(status, response_headers, exc_info=None):
            seen["status"] = status
            seen["headers"] = response_headers

        try:
            out = b"".join(app(environ, collect))
        except Exception as e:  # spyne gave up (e.g. a body it cannot parse)
            seen["status"] = "500 Internal Server Error"
            seen["headers"] = [("Content-Type", "text/plain; charset=utf-8")]
            out = ("spyne failed: %r\n" % e).encode()
        start_response(seen["status"], seen["headers"])
        with self.lock:
            self.last = {
                "request": {
                    "method": method,
                    "path": path,
                    "headers": headers,
                    "body": base64.b64encode(body).decode(),
                },
                "response": {
                    "status": int(seen["status"].split()[0]),
                    "headers": {k.lower(): v for k, v in seen["headers"]},
                    "body": base64.b64encode(out).decode(),
                },
            }
        return [out]


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


def main():
    logging.basicConfig(level=logging.CRITICAL)
    server = make_server("127.0.0.1", 0, Recorder(), server_class=Server, handler_class=QuietHandler)
    print(server.server_address[1], flush=True)

    def exit_on_stdin_close():
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=exit_on_stdin_close, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
