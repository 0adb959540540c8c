"""How busy the server's HTTP side is, for the live loop to decide whether to rest.

The loop (resolve, score, workflows) runs in the loader thread, and its pandas and Python
parts hold the GIL while they run: a request answered meanwhile waits for it. So after a
run the loop rests, twice as long as the run took, when requests were answered during it
(see :mod:`demandloop.serve.loader`). When none were, resting protects nobody and only
delays the next alert, so the loop may run again at once.

:class:`Timed` measures every HTTP request of the process from its arrival to the start of
its response (the work of answering it; a streamed answer's later chunks are not counted,
nor is a connection kept open for them), and adds the seconds to :data:`SERVING`.
"""

from __future__ import annotations

import threading
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Serving:
    """Seconds spent answering requests, summed over the process's life (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds = 0.0

    def add(self, seconds: float) -> None:
        with self._lock:
            self._seconds += seconds

    def seconds(self) -> float:
        """The sum so far (the loop compares two readings)."""
        with self._lock:
            return self._seconds


#: the process's requests (every app of a server adds to the one sum)
SERVING = Serving()


class Timed:
    """ASGI middleware adding each HTTP request's time to its first response byte to
    *serving*."""

    def __init__(self, app: ASGIApp, serving: Serving = SERVING) -> None:
        self.app, self.serving = app, serving

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, counted = time.perf_counter(), [False]

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start" and not counted[0]:
                counted[0] = True
                self.serving.add(time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, timed)
        finally:
            if not counted[0]:  # no response started (the client went away)
                self.serving.add(time.perf_counter() - started)
