"""Test helpers: run the sandbox as a real subprocess, steer it, and receive callbacks.

from services.sandbox.testing import CallbackReceiver, SandboxServer

with SandboxServer(ring_seconds=0.05, talk_seconds=0.1) as sandbox, CallbackReceiver() as rx:
    sandbox.control.add_fault("connect", status=503, count=2)
    ...  # point EXOTEL_BASE_URL / EXOTEL_CCM_BASE_URL at sandbox.base_url
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from services.common.processes import ChildProcess, free_port, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
_DEFAULTS = {
    "SANDBOX_ACCOUNT_SID": "voicebus-sandbox",
    "SANDBOX_API_KEY": "sandbox-key",
    "SANDBOX_API_TOKEN": "sandbox-token",
}

JsonDict = dict[str, Any]


class SandboxControl:
    """The ``/_sandbox`` admin API. Sync methods, and ``*_async`` twins for async tests."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None

    # -- plumbing ---------------------------------------------------------------
    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._client is None:
            self._client = httpx.Client(base_url=self.base_url, timeout=self._timeout)
        response = self._client.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    async def _asend(self, method: str, path: str, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aloop is not loop:
            self._aclient = httpx.AsyncClient(base_url=self.base_url, timeout=self._timeout)
            self._aloop = loop
        response = await self._aclient.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None

    # -- sync ---------------------------------------------------------------------
    def health(self) -> JsonDict:
        result: JsonDict = self._send("GET", "/_sandbox/health")
        return result

    def requests(self, *, since: int = 0, call_sid: str | None = None) -> list[JsonDict]:
        params: dict[str, Any] = {"since": since}
        if call_sid:
            params["call_sid"] = call_sid
        result: list[JsonDict] = self._send("GET", "/_sandbox/requests", params=params)
        return result

    def clear_requests(self) -> None:
        self._send("DELETE", "/_sandbox/requests")

    def add_fault(self, match: str = "", **spec: Any) -> JsonDict:
        """``spec``: method, status, count, body, retry_after, delay_seconds, kind."""
        result: JsonDict = self._send("POST", "/_sandbox/faults", json={"match": match, **spec})
        return result

    def clear_faults(self) -> None:
        self._send("DELETE", "/_sandbox/faults")

    def chaos(self, error_rate: float, **spec: Any) -> JsonDict:
        """``spec``: kinds, timeout_seconds, retry_after, seed, match, method."""
        body = {"error_rate": error_rate, **spec}
        result: JsonDict = self._send("POST", "/_sandbox/chaos", json=body)
        return result

    def set_latency(self, seconds: float) -> None:
        self._send("POST", "/_sandbox/latency", json={"seconds": seconds})

    def set_rate_limits(self, **limits: Any) -> JsonDict:
        """voice_calls_per_minute, get_per_minute, legs_per_minute, enabled."""
        result: JsonDict = self._send("POST", "/_sandbox/rate-limits", json=limits)
        return result

    def rate_stats(self) -> JsonDict:
        result: JsonDict = self._send("GET", "/_sandbox/rate-stats")
        return result

    def reset_rate_stats(self) -> None:
        self._send("DELETE", "/_sandbox/rate-stats")

    def calls(self) -> list[JsonDict]:
        result: list[JsonDict] = self._send("GET", "/_sandbox/calls")
        return result

    def call(self, sid: str) -> JsonDict:
        result: JsonDict = self._send("GET", f"/_sandbox/calls/{sid}")
        return result

    def end_call(self, sid: str) -> JsonDict:
        result: JsonDict = self._send("POST", f"/_sandbox/calls/{sid}/end")
        return result

    def reset(self) -> None:
        """Clear faults, chaos, latency, the request log, rate stats; limits back to config."""
        self._send("POST", "/_sandbox/reset")

    def inbound(self, **spec: Any) -> JsonDict:
        """A caller rings an ExoPhone (``from``, ``exophone``, ``agent``, ``passthru_url``,
        ...: services/sandbox/inbound.py); returns the new call's view."""
        result: JsonDict = self._send("POST", "/_sandbox/inbound", json=spec)
        return result

    def set_callback_spelling(self, spelling: str) -> str:
        """``documented``, ``PascalCase``, ``lowercase`` or ``snake_case``: the keys of
        every callback sent from now on."""
        result: JsonDict = self._send(
            "POST", "/_sandbox/callback-spelling", json={"spelling": spelling}
        )
        return str(result["spelling"])

    def wait_for_call(
        self,
        sid: str,
        predicate: Callable[[JsonDict], bool] = lambda call: bool(call["ended"]),
        timeout: float = 10.0,
    ) -> JsonDict:
        """Poll the call's internal view until ``predicate`` holds (default: it ended)."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.call(sid)
            if predicate(view):
                return view
            if time.monotonic() > deadline:
                raise TimeoutError(f"call {sid} never matched; last view: {view}")
            time.sleep(0.02)

    def wait_for_callbacks_settled(self, sid: str, timeout: float = 10.0) -> JsonDict:
        """Wait until the call ended and every callback about it finished delivering."""
        return self.wait_for_call(
            sid,
            lambda call: bool(call["ended"]) and all(cb["finished"] for cb in call["callbacks"]),
            timeout,
        )

    # -- async ----------------------------------------------------------------------
    async def health_async(self) -> JsonDict:
        result: JsonDict = await self._asend("GET", "/_sandbox/health")
        return result

    async def requests_async(
        self, *, since: int = 0, call_sid: str | None = None
    ) -> list[JsonDict]:
        params: dict[str, Any] = {"since": since}
        if call_sid:
            params["call_sid"] = call_sid
        result: list[JsonDict] = await self._asend("GET", "/_sandbox/requests", params=params)
        return result

    async def clear_requests_async(self) -> None:
        await self._asend("DELETE", "/_sandbox/requests")

    async def add_fault_async(self, match: str = "", **spec: Any) -> JsonDict:
        body = {"match": match, **spec}
        result: JsonDict = await self._asend("POST", "/_sandbox/faults", json=body)
        return result

    async def clear_faults_async(self) -> None:
        await self._asend("DELETE", "/_sandbox/faults")

    async def chaos_async(self, error_rate: float, **spec: Any) -> JsonDict:
        body = {"error_rate": error_rate, **spec}
        result: JsonDict = await self._asend("POST", "/_sandbox/chaos", json=body)
        return result

    async def set_latency_async(self, seconds: float) -> None:
        await self._asend("POST", "/_sandbox/latency", json={"seconds": seconds})

    async def set_rate_limits_async(self, **limits: Any) -> JsonDict:
        result: JsonDict = await self._asend("POST", "/_sandbox/rate-limits", json=limits)
        return result

    async def rate_stats_async(self) -> JsonDict:
        result: JsonDict = await self._asend("GET", "/_sandbox/rate-stats")
        return result

    async def reset_rate_stats_async(self) -> None:
        await self._asend("DELETE", "/_sandbox/rate-stats")

    async def calls_async(self) -> list[JsonDict]:
        result: list[JsonDict] = await self._asend("GET", "/_sandbox/calls")
        return result

    async def call_async(self, sid: str) -> JsonDict:
        result: JsonDict = await self._asend("GET", f"/_sandbox/calls/{sid}")
        return result

    async def end_call_async(self, sid: str) -> JsonDict:
        result: JsonDict = await self._asend("POST", f"/_sandbox/calls/{sid}/end")
        return result

    async def reset_async(self) -> None:
        await self._asend("POST", "/_sandbox/reset")

    async def inbound_async(self, **spec: Any) -> JsonDict:
        result: JsonDict = await self._asend("POST", "/_sandbox/inbound", json=spec)
        return result

    async def set_callback_spelling_async(self, spelling: str) -> str:
        result: JsonDict = await self._asend(
            "POST", "/_sandbox/callback-spelling", json={"spelling": spelling}
        )
        return str(result["spelling"])

    async def wait_for_call_async(
        self,
        sid: str,
        predicate: Callable[[JsonDict], bool] = lambda call: bool(call["ended"]),
        timeout: float = 10.0,  # noqa: ASYNC109 - mirrors the sync twin
    ) -> JsonDict:
        deadline = time.monotonic() + timeout
        while True:
            view = await self.call_async(sid)
            if predicate(view):
                return view
            if time.monotonic() > deadline:
                raise TimeoutError(f"call {sid} never matched; last view: {view}")
            await asyncio.sleep(0.02)


class SandboxServer:
    """``python -m services.sandbox`` in a subprocess on a free loopback port.

    Keyword arguments are settings (``ring_seconds=0.05`` becomes
    ``SANDBOX_RING_SECONDS=0.05``); ``env`` adds raw environment variables.
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 20.0,
        **settings: object,
    ) -> None:
        self._extra_env = dict(env or {})
        for name, value in settings.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            self._extra_env[f"SANDBOX_{name.upper()}"] = text
        self._startup_timeout = startup_timeout
        self._child: ChildProcess | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._control: SandboxControl | None = None
        self.last_exit_code: int | None = None
        self.host = "127.0.0.1"
        self.port = 0
        merged = {**_DEFAULTS, **{k: v for k, v in os.environ.items() if k in _DEFAULTS}}
        merged.update({k: v for k, v in self._extra_env.items() if k in _DEFAULTS})
        self.account_sid = merged["SANDBOX_ACCOUNT_SID"]
        self.api_key = merged["SANDBOX_API_KEY"]
        self.api_token = merged["SANDBOX_API_TOKEN"]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def auth(self) -> tuple[str, str]:
        """(api key, api token) for ``httpx``'s ``auth=``."""
        return (self.api_key, self.api_token)

    @property
    def control(self) -> SandboxControl:
        if self._control is None:
            self._control = SandboxControl(self.base_url)
        return self._control

    @property
    def log_path(self) -> Path | None:
        return None if self._tmp is None else Path(self._tmp.name) / "sandbox.log"

    def logs(self) -> str:
        path = self.log_path
        return path.read_text(errors="replace") if path and path.exists() else ""

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("HTTP_HOST", "HTTP_PORT")}
        env.update(_DEFAULTS)
        env.update({k: v for k, v in os.environ.items() if k in _DEFAULTS})
        env.update(self._extra_env)
        env["SANDBOX_HOST"] = self.host
        env["SANDBOX_PORT"] = str(self.port)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
        )
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def start(self) -> SandboxServer:
        self._tmp = tempfile.TemporaryDirectory(prefix="sandbox-")
        last_error = ""
        for _ in range(3):  # a port can be taken between picking and binding it
            self.port = free_port(self.host)
            if self._launch():
                return self
            last_error = self.logs()[-3000:]
            self._reap()
        self._cleanup()
        raise RuntimeError(f"sandbox did not start; its log ends with:\n{last_error}")

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def _launch(self) -> bool:
        self._child = ChildProcess(
            [sys.executable, "-m", "services.sandbox"],
            name="sandbox",
            env=self._env(),
            cwd=REPO_ROOT,
            log=self.log_path,
        )
        self._child.start()
        child = self._child

        def answers() -> bool:
            with contextlib.suppress(httpx.HTTPError), httpx.Client(timeout=1.0) as client:
                return client.get(f"{self.base_url}/_sandbox/health").status_code == 200
            return False

        up = wait_until(lambda: not child.running() or answers(), self._startup_timeout)
        return up and child.running()

    def _reap(self) -> int | None:
        child, self._child = self._child, None
        return child.stop(timeout=5) if child is not None else None

    def _cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def stop(self) -> int | None:
        """SIGTERM, then kill after 5 s. Returns the exit code."""
        if self._control is not None:
            self._control.close()
        started = self._child is not None
        code = self._reap()
        self._cleanup()
        if not started:
            return None
        self.last_exit_code = code
        return code

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> SandboxServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._control is not None:
            await self._control.aclose()
        await asyncio.to_thread(self.stop)


@dataclass
class ReceivedCallback:
    """One HTTP request the receiver got."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    form: dict[str, str] | None
    json: Any
    at: float = field(default_factory=time.monotonic)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def data(self) -> Any:
        """The JSON body, the form, or the query (GET callbacks)."""
        if self.json is not None:
            return self.json
        if self.form is not None:
            return self.form
        return self.query


class CallbackReceiver:
    """A tiny HTTP server (uvicorn in a thread) that records every request it gets.

    ``respond_with(500, 500)`` makes the next two requests answer 500 (then 200 again).
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.received: list[ReceivedCallback] = []
        self._statuses: list[int] = []
        self._delay = 0.0
        self._lock = threading.Condition()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/callbacks", **query: str) -> str:
        suffix = "&".join(f"{key}={value}" for key, value in query.items())
        return f"{self.base_url}{path}" + (f"?{suffix}" if suffix else "")

    def respond_with(self, *statuses: int, delay_seconds: float = 0.0) -> None:
        with self._lock:
            self._statuses = list(statuses)
            self._delay = delay_seconds

    def clear(self) -> None:
        with self._lock:
            self.received.clear()

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        form: dict[str, str] | None = None
        data: Any = None
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            parsed = await request.form()
            form = {
                key: (value.filename or "") if isinstance(value, UploadFile) else value
                for key, value in parsed.multi_items()
            }
        elif "json" in content_type and body:
            data = json.loads(body)
        with self._lock:
            status = self._statuses.pop(0) if self._statuses else 200
            delay = self._delay
        if delay:
            await asyncio.sleep(delay)
        item = ReceivedCallback(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers={key.lower(): value for key, value in request.headers.items()},
            body=body,
            form=form,
            json=data,
        )
        with self._lock:
            self.received.append(item)
            self._lock.notify_all()
        return PlainTextResponse("ok" if status == 200 else "nope", status_code=status)

    def wait_for(
        self,
        predicate: Callable[[ReceivedCallback], bool] = lambda _: True,
        *,
        count: int = 1,
        timeout: float = 10.0,
    ) -> list[ReceivedCallback]:
        """Block until ``count`` received requests match; returns them in arrival order."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [item for item in self.received if predicate(item)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"wanted {count} matching callbacks, got {len(found)} "
                        f"of {len(self.received)} received"
                    )
                self._lock.wait(left)

    async def wait_for_async(
        self,
        predicate: Callable[[ReceivedCallback], bool] = lambda _: True,
        *,
        count: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109 - mirrors the sync twin
    ) -> list[ReceivedCallback]:
        return await asyncio.to_thread(self.wait_for, predicate, count=count, timeout=timeout)

    def start(self) -> CallbackReceiver:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        app = Starlette(
            routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "PUT", "DELETE"])]
        )
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        server = self._server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="callback-receiver", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("callback receiver did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> CallbackReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> CallbackReceiver:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)
