"""Local servers that speak the providers' protocols, and can be told to misbehave.

- ``ProviderStub``: one HTTP server answering like Twilio's Messages API
  (``POST|GET /2010-04-01/Accounts/{sid}/Messages.json``), FCM's HTTP v1 send API
  (``POST /v1/projects/{project}/messages:send``) and Postmark's email API (``POST /email``, an ESP for
  django-anymail), with the providers' own error bodies.
- ``SmtpStub``: an aiosmtpd SMTP server.

Each keeps what it accepted, so a test can count duplicates, and takes a *fault*: answer with an error
status (``error``), never answer in time (``timeout``), or answer late (``delay``), for the next ``times``
requests or until changed. Used in-process by tests and as a separate process by chaos/ and bench/
(``python -m chaos.provider_stub --port 0``: prints its port, then takes faults on ``POST /_control``).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import logging
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

# Twilio answers invalid numbers with HTTP 400 and code 21211; FCM a dead token with 404 UNREGISTERED.
INVALID_NUMBER_PREFIX = "+1555000"
DEAD_TOKEN_PREFIX = "dead-"  # noqa: S105  (a test token prefix, not a secret)

TWILIO_ERRORS: dict[int, dict[str, Any]] = {
    400: {"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400},
    429: {"code": 20429, "message": "Too Many Requests", "status": 429},
    500: {"code": 20500, "message": "Internal Server Error", "status": 500},
    503: {"code": 20503, "message": "Service Unavailable", "status": 503},
}
FCM_STATUS = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass
class Fault:
    mode: str = "ok"  # ok | error | timeout
    status: int = 503
    delay: float = 0.0
    times: int | None = None  # None: until changed
    # Twilio: fault just this account; FCM: just this project (a primary down, its secondary up).
    account: str = ""


@dataclass
class StubState:
    faults: dict[str, Fault] = field(
        default_factory=lambda: {"twilio": Fault(), "fcm": Fault(), "postmark": Fault()}
    )
    sms: list[dict[str, Any]] = field(default_factory=list)
    email: list[dict[str, Any]] = field(default_factory=list)
    push: list[dict[str, Any]] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    timeout_seconds: float = 30.0

    def take_fault(self, api: str, account: str = "") -> Fault:
        with self.lock:
            self.requests[api] += 1
            fault = self.faults[api]
            if fault.account and fault.account != account:
                return Fault()
            if fault.mode == "ok" and not fault.delay:
                return fault
            if fault.times is not None:
                fault.times -= 1
                if fault.times < 0:
                    self.faults[api] = Fault()
                    return self.faults[api]
            return Fault(mode=fault.mode, status=fault.status, delay=fault.delay)


def _twilio_resource(
    sid: str, account: str, to: str, from_: str, body: str, created: datetime
) -> dict[str, Any]:
    stamp = format_datetime(created, usegmt=True)
    return {
        "sid": sid,
        "account_sid": account,
        "to": to,
        "from": from_,
        "body": body,
        "status": "queued",
        "direction": "outbound-api",
        "num_segments": "1",
        "date_created": stamp,
        "date_updated": stamp,
        "date_sent": stamp,
        "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
        "api_version": "2010-04-01",
    }


class _Handler(BaseHTTPRequestHandler):
    server: _StubServer
    protocol_version = "HTTP/1.1"
    # The headers and the body leave in two writes; with Nagle's algorithm on, the body waits for the
    # client's delayed ACK of the headers (≈ 40 ms on Linux), so every answer came ≈ 40 ms later than the
    # configured delay. A real provider's answer arrives in one go.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _apply(self, fault: Fault) -> bool:
        """Sleep as the fault says; True when the request must not be answered normally."""
        if fault.mode == "timeout":
            time.sleep(self.server.state.timeout_seconds)
            self.close_connection = True
            return True
        if fault.delay:
            time.sleep(fault.delay)
        return fault.mode == "error"

    def do_GET(self) -> None:
        url = urlparse(self.path)
        state = self.server.state
        if url.path == "/_state":
            with state.lock:
                self._reply(200, {"sms": state.sms, "push": state.push, "requests": dict(state.requests)})
            return
        if url.path.endswith("/Messages.json"):
            query = parse_qs(url.query)
            to = (query.get("To") or [""])[0]
            with state.lock:
                found = [m for m in state.sms if not to or m["to"] == to]
            self._reply(
                200,
                {
                    "messages": found,
                    "end": max(len(found) - 1, 0),
                    "first_page_uri": url.path,
                    "next_page_uri": None,
                    "previous_page_uri": None,
                    "page": 0,
                    "page_size": 200,
                    "start": 0,
                    "uri": url.path,
                },
            )
            return
        self._reply(404, {"message": "not found"})

    def do_POST(self) -> None:
        url = urlparse(self.path)
        state = self.server.state
        body = self._body()
        if len(body) < int(self.headers.get("Content-Length") or 0):
            # The client died mid-request (a kill -9 between the headers and the body): a real provider
            # never sees a complete request, so it accepts nothing. Recording the fragment as a message
            # would count a send that never happened (and a "duplicate" when the retry arrives whole).
            self.close_connection = True
            return
        if url.path == "/_control":
            control = json.loads(body or b"{}")
            with state.lock:
                if control.get("reset"):
                    state.sms.clear()
                    state.push.clear()
                    state.requests.clear()
                for api in control.get("apis", ["twilio", "fcm"]):
                    state.faults[api] = Fault(
                        mode=control.get("mode", "ok"),
                        status=int(control.get("status", 503)),
                        delay=float(control.get("delay", 0.0)),
                        times=control.get("times"),
                        account=control.get("account", ""),
                    )
            self._reply(200, {"ok": True})
            return
        if url.path.startswith("/2010-04-01/Accounts/") and url.path.endswith("/Messages.json"):
            self._twilio_send(url.path.split("/")[3], body)
            return
        if url.path.startswith("/v1/projects/") and url.path.endswith("/messages:send"):
            self._fcm_send(url.path.split("/")[3], body)
            return
        if url.path == "/email":
            self._postmark_send(body)
            return
        self._reply(404, {"message": "not found"})

    def _twilio_send(self, account: str, raw: bytes) -> None:
        state = self.server.state
        form = {key: values[0] for key, values in parse_qs(raw.decode()).items()}
        fault = state.take_fault("twilio", account)
        if self._apply(fault):
            if fault.mode == "error":
                error = TWILIO_ERRORS.get(fault.status, TWILIO_ERRORS[503])
                self._reply(fault.status, {**error, "more_info": "https://www.twilio.com/docs/errors"})
            return
        to = form.get("To", "")
        if to.startswith(INVALID_NUMBER_PREFIX):
            self._reply(400, {**TWILIO_ERRORS[400], "more_info": "https://www.twilio.com/docs/errors/21211"})
            return
        sid = "SM" + uuid.uuid4().hex
        message = _twilio_resource(
            sid, account, to, form.get("From", ""), form.get("Body", ""), datetime.now(UTC)
        )
        message["status_callback"] = form.get("StatusCallback", "")
        message["received_at"] = time.time()
        with state.lock:
            state.sms.append(message)
        self._reply(201, message)

    def _postmark_send(self, raw: bytes) -> None:
        _postmark_send_impl(self, raw)

    def _fcm_send(self, project: str, raw: bytes) -> None:
        state = self.server.state
        payload = json.loads(raw or b"{}")
        fault = state.take_fault("fcm", project)
        if self._apply(fault):
            if fault.mode == "error":
                self._reply(fault.status, _fcm_error(fault.status, ""))
            return
        message = payload.get("message", {})
        token = str(message.get("token", ""))
        if token.startswith(DEAD_TOKEN_PREFIX):
            self._reply(404, _fcm_error(404, "UNREGISTERED"))
            return
        name = f"projects/{project}/messages/{uuid.uuid4().hex}"
        with state.lock:
            state.push.append(
                {"name": name, "message": message, "validate_only": payload.get("validate_only")}
            )
        self._reply(200, {"name": name})


def _postmark_send_impl(handler: _Handler, raw: bytes) -> None:
    state = handler.server.state
    payload = json.loads(raw or b"{}")
    fault = state.take_fault("postmark")
    if handler._apply(fault):
        if fault.mode == "error":
            handler._reply(fault.status, {"ErrorCode": 100, "Message": "Maintenance"})
        return
    if handler.headers.get("X-Postmark-Server-Token", "") == "":
        handler._reply(401, {"ErrorCode": 10, "Message": "No Account or Server API tokens were supplied."})
        return
    to = str(payload.get("To", ""))
    if "bounce" in to:
        address = to.split("<")[-1].rstrip(">")
        message = (
            "You tried to send to recipient(s) that have been marked as inactive.\n"
            f"Found inactive addresses: {address}.\n"
            "Inactive recipients are ones that have generated a hard bounce or a spam complaint."
        )
        handler._reply(422, {"ErrorCode": 406, "Message": message})
        return
    message_id = str(uuid.uuid4())
    with state.lock:
        state.email.append({"message_id": message_id, **payload})
    handler._reply(
        200,
        {
            "To": to,
            "SubmittedAt": datetime.now(UTC).isoformat(),
            "MessageID": message_id,
            "ErrorCode": 0,
            "Message": "OK",
        },
    )


def _fcm_error(status: int, fcm_code: str) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": status,
        "message": "Requested entity was not found."
        if status == 404
        else "The service is currently unavailable.",
        "status": FCM_STATUS.get(status, "INTERNAL"),
    }
    if fcm_code:
        error["details"] = [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcm_code}
        ]
    return {"error": error}


class _StubServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], state: StubState) -> None:
        super().__init__(address, _Handler)
        self.state = state

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client killed mid-request (the point of a drill) resets its connection: not news.
        return


class ProviderStub:
    """The Twilio + FCM stub in a background thread of this process."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = StubState()
        self.server = _StubServer((host, port), self.state)
        self.port = int(self.server.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> ProviderStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fault(
        self,
        api: str,
        mode: str = "ok",
        *,
        status: int = 503,
        delay: float = 0.0,
        times: int | None = None,
        account: str = "",
    ) -> None:
        with self.state.lock:
            self.state.faults[api] = Fault(
                mode=mode, status=status, delay=delay, times=times, account=account
            )

    @property
    def sms(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.sms)

    @property
    def email(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.email)

    @property
    def push(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.push)


class _SmtpHandler:
    def __init__(self, stub: SmtpStub) -> None:
        self.stub = stub

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address.startswith("bounce"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import asyncio

        fault = self.stub.take_fault()
        if fault.mode == "timeout":
            await asyncio.sleep(self.stub.timeout_seconds)
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.mode == "error":
            return (
                "451 4.3.0 Temporary failure, try again later" if fault.status < 500 else "554 5.0.0 Rejected"
            )
        with self.stub.lock:
            self.stub.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 2.0.0 Ok: queued"


class SmtpStub:
    """An aiosmtpd server that keeps the parsed messages it accepted."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from aiosmtpd.controller import Controller

        logging.getLogger("mail.log").setLevel(logging.WARNING)
        self.lock = threading.Lock()
        self.messages: list[email.message.Message] = []
        self._fault = Fault()
        self.timeout_seconds = 30.0
        if not port:
            import socket

            with socket.socket() as sock:
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
        self.port = port
        self.controller = Controller(_SmtpHandler(self), hostname=host, port=port)
        self.url = f"smtp://{host}:{port}"

    def start(self) -> SmtpStub:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def fault(
        self, mode: str = "ok", *, status: int = 451, delay: float = 0.0, times: int | None = None
    ) -> None:
        with self.lock:
            self._fault = Fault(mode=mode, status=status, delay=delay, times=times)

    def take_fault(self) -> Fault:
        with self.lock:
            fault = self._fault
            if fault.times is not None:
                fault.times -= 1
                if fault.times < 0:
                    self._fault = Fault()
                    return self._fault
            return Fault(mode=fault.mode, status=fault.status, delay=fault.delay)


def main() -> None:
    parser = argparse.ArgumentParser(description="Twilio + FCM protocol stub")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="answer every request this late (seconds)")
    args = parser.parse_args()
    stub = ProviderStub(port=args.port)
    if args.delay:
        for api in ("twilio", "fcm"):
            stub.fault(api, "ok", delay=args.delay)
    print(stub.port, flush=True)
    stub.server.serve_forever()


if __name__ == "__main__":
    main()
