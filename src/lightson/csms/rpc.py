"""One OCPP-J peer on one WebSocket: answers CALLs, sends CALLs and waits for their answers.

Built on the ``ocpp`` package's ``ChargePoint`` (its ``@on`` routing, handler conventions and
message dataclasses), with the message handling replaced by our wire layer so that:

- every CALL gets an answer, in every version: an unhandled action is ``NotImplemented`` when
  the version has it and ``NotSupported`` when it does not (the package sends nothing for an
  unhandled OCPP 2.1 action);
- an unparseable frame gets a CALLERROR (the package only logs it) and the connection stays up;
- a paced peer is read all the time into a bounded queue of our own (so the ``websockets``
  library keeps reading the socket and answering its keepalive pings); a CALL that finds the
  queue full is answered at once with a CALLERROR instead of being read later;
- OCPP 2.1 SEND frames reach their handler and CALLRESULTERROR frames are logged;
- payload names keep the standard's spelling (see :mod:`lightson.csms.wire`);
- answers are matched to CALLs by message id, so a late answer never lands on the next CALL.

Both the CSMS (one session per station) and the charger emulator use this class.
"""

from __future__ import annotations

import asyncio
import collections
import importlib
import inspect
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import is_dataclass
from typing import Any, Protocol, TypeVar, cast

from ocpp import routing
from ocpp.charge_point import ChargePoint
from websockets.exceptions import ConnectionClosed

from lightson.csms.wire import (
    UNREADABLE_MESSAGE_ID,
    Direction,
    ErrorCode,
    Frame,
    FrameError,
    MessageType,
    OcppVersion,
    bounded,
    call_error,
    frame_head,
    from_wire,
    has_schema,
    parse_frame,
    shown,
    to_wire,
    validate,
)

LOGGER = logging.getLogger("lightson.csms")


Handler = TypeVar("Handler", bound=Callable[..., Any])


def on(action: str) -> Callable[[Handler], Handler]:
    """The ``ocpp`` package's ``@on`` routing decorator, typed."""
    return cast(Callable[[Handler], Handler], routing.on(action))


def after(action: str) -> Callable[[Handler], Handler]:
    """The ``ocpp`` package's ``@after`` hook decorator, typed."""
    return cast(Callable[[Handler], Handler], routing.after(action))


class Connection(Protocol):
    """What a session needs of a WebSocket (``websockets`` connections have it)."""

    async def recv(self) -> str | bytes: ...

    async def send(self, message: str) -> None: ...


class CallRefusedError(Exception):
    """The peer answered our CALL with a CALLERROR."""

    def __init__(self, action: str, code: str, description: str) -> None:
        super().__init__(f"{action}: {code}: {description}")
        self.action = action
        self.code = code
        self.description = description


class RateLimit:
    """A token bucket: ``per_second`` messages on average, bursts of ``burst``. A station
    that sends faster is paced (its next frame is read later), never dropped."""

    def __init__(self, per_second: float, burst: int, now: Callable[[], float] = time.monotonic):
        if per_second <= 0 or burst < 1:
            raise ValueError("a rate limit needs per_second > 0 and burst >= 1")
        self.per_second = per_second
        self.burst = burst
        self._now = now
        self._tokens = float(burst)
        self._updated = now()

    def delay_s(self) -> float:
        """Take one token; return how long to wait before using it (0 when one is there)."""
        now = self._now()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.per_second)
        self._updated = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.per_second


class FrameQueue:
    """Frames read from the socket and not yet handled, bounded in count and in characters.
    :meth:`offer` refuses a frame that does not fit; the first one always fits, so a frame of
    the largest allowed size is never refused by an empty queue."""

    def __init__(self, max_frames: int, max_chars: int) -> None:
        if max_frames < 1 or max_chars < 1:
            raise ValueError("a frame queue needs max_frames >= 1 and max_chars >= 1")
        self.max_frames = max_frames
        self.max_chars = max_chars
        self._frames: collections.deque[str | bytes] = collections.deque()
        self._chars = 0
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def chars(self) -> int:
        """Characters (bytes for a binary frame) held."""
        return self._chars

    def offer(self, frame: str | bytes) -> bool:
        """Queue ``frame`` if it fits; False (and nothing held) if it does not."""
        full = len(self._frames) >= self.max_frames or self._chars + len(frame) > self.max_chars
        if self._frames and full:
            return False
        self._frames.append(frame)
        self._chars += len(frame)
        self._ready.set()
        return True

    async def take(self) -> str | bytes:
        """The oldest frame, waiting for one if there is none."""
        while not self._frames:
            self._ready.clear()
            await self._ready.wait()
        frame = self._frames.popleft()
        self._chars -= len(frame)
        return frame


class OcppSession(ChargePoint):  # type: ignore[misc]
    """A peer speaking one OCPP version. Subclasses add ``@on(action)`` handlers."""

    def __init__(
        self,
        peer_id: str,
        connection: Connection,
        version: OcppVersion,
        response_timeout_s: float = 30.0,
        rate_limit: RateLimit | None = None,
        waiting: FrameQueue | None = None,
    ) -> None:
        """With a ``rate_limit`` the peer's frames are handled at that pace, and those read
        ahead of it wait in ``waiting`` (by default as many frames as the limit's burst, of at
        most 1 MiB together)."""
        super().__init__(peer_id, connection, response_timeout=response_timeout_s)
        self.version = version
        self._ocpp_version = version.value
        self._rate_limit = rate_limit
        if waiting is None and rate_limit is not None:
            waiting = FrameQueue(rate_limit.burst, 1 << 20)
        self._waiting = waiting
        self._reading = True  # until the connection closes
        self._handling = False  # the paced worker is handling a frame
        self._overflowing = False
        self._pending: dict[str, asyncio.Future[Frame]] = {}
        self.errors_sent = 0
        self.frames_refused = 0  # frames that found the waiting queue full
        self._call_result = importlib.import_module(
            "ocpp.v" + version.value.replace(".", "") + ".call_result"
        )

    async def start(self) -> None:
        """Read and handle frames until the connection closes; calls still waiting for an
        answer then fail at once with ``ConnectionClosed`` (not after their timeout)."""
        try:
            await self._read_frames()
        except BaseException as ended:
            closed = ended if isinstance(ended, ConnectionClosed) else ConnectionClosed(None, None)
            for waiter in self._pending.values():
                if not waiter.done():
                    waiter.set_exception(closed)
            self._pending.clear()
            raise

    async def _read_frames(self) -> None:
        """Unpaced, each frame is handled as it is read. Paced, frames are read as fast as they
        come (a paced peer that stopped being read would stop answering our keepalive pings,
        and ``websockets`` would close it with 1011) and handled in order by a worker that
        keeps the pace; a frame that finds the queue full goes to :meth:`_overflow`."""
        if self._rate_limit is None or self._waiting is None:
            await self._read_unpaced()
            return
        worker = asyncio.create_task(self._handle_paced(self._rate_limit, self._waiting))
        try:
            while True:
                message = await self._connection.recv()
                if not self._waiting.offer(message):
                    await self._overflow(message)
        finally:
            # A frame being handled is finished (stored first, as when the reader handled it
            # itself); frames still waiting go with the connection, unanswered, as unread
            # frames did.
            self._reading = False
            if not self._handling:
                worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    async def _read_unpaced(self) -> None:
        while True:
            await self._handle_frame(await self._connection.recv())

    async def _handle_paced(self, rate_limit: RateLimit, waiting: FrameQueue) -> None:
        while self._reading:
            message = await waiting.take()
            self._handling = True
            try:
                delay_s = rate_limit.delay_s()
                if delay_s > 0:
                    await asyncio.sleep(delay_s)
                await self._handle_frame(message)
            finally:
                self._handling = False
            if not waiting:
                self._overflowing = False

    async def _handle_frame(self, message: str | bytes) -> None:
        # The package logs what it sends at INFO; what is received, as the package would.
        self.logger.info("%s: receive message %s", self.id, message)
        try:
            await self.route_message(message)
        except (ConnectionClosed, asyncio.CancelledError):
            raise
        except Exception:  # one bad frame must never end the session
            LOGGER.exception("%s: a frame could not be handled", self.id)

    async def _overflow(self, message: str | bytes) -> None:
        """A frame that found the waiting queue full: the peer has sent far more than it was
        answered, which OCPP-J asks it not to (one CALL at a time, each after the previous
        answer or its timeout). A CALL (or a frame whose head cannot be read) is answered at
        once with ``RpcFrameworkError`` (1.6, which has no such code: ``GenericError``) and
        not handled, so the peer may send it again later; an answer to our pending CALL is
        handled at once; anything else expects no answer and is dropped. Only the frame's
        head is read, never the whole frame, so a flood costs little."""
        self.frames_refused += 1
        if not self._overflowing:
            self._overflowing = True
            LOGGER.warning(
                "%s: %d frames waiting; further CALLs are refused until they are handled",
                self.id,
                len(self._waiting or ()),
            )
        head = frame_head(message) if isinstance(message, str) else None
        kind = head[0] if head is not None else None
        if kind in (MessageType.CALL_RESULT, MessageType.CALL_ERROR):
            if self._pending:
                await self._handle_frame(message)
            return
        if kind in (MessageType.CALL_RESULT_ERROR, MessageType.SEND):
            return
        if self.version is OcppVersion.V16:
            code = ErrorCode.GENERIC_ERROR
        else:
            code = ErrorCode.RPC_FRAMEWORK_ERROR
        message_id = head[1] if head is not None and kind == MessageType.CALL else None
        await self._send_error(
            FrameError(
                code,
                "too many messages waiting to be handled: send a CALL only after the "
                "previous one is answered",
                message_id or UNREADABLE_MESSAGE_ID,
            )
        )

    async def route_message(self, raw_msg: str | bytes) -> None:
        try:
            frame = parse_frame(raw_msg, self.version)
        except FrameError as error:
            LOGGER.warning("%s: unusable frame: %s", self.id, error.description)
            await self._refuse(error)
            return
        if frame.type is MessageType.CALL:
            await self._answer(frame)
        elif frame.type is MessageType.SEND:
            await self._receive_send(frame)
        elif frame.type in (MessageType.CALL_RESULT, MessageType.CALL_ERROR):
            waiter = self._pending.pop(frame.message_id, None)
            if waiter is None or waiter.done():
                LOGGER.warning("%s: answer to no pending call: %r", self.id, frame.message_id)
            else:
                waiter.set_result(frame)
        else:
            LOGGER.warning(
                "%s: our answer %s was refused: %s %s",
                self.id,
                frame.message_id,
                shown(str(frame.error_code)),
                bounded(str(frame.error_description)),
            )

    async def _refuse(self, error: FrameError) -> None:
        """Answer a bad frame as the standard says: a CALLERROR for a CALL, a
        CALLRESULTERROR (2.1) for a CALLRESULT, silence for the rest; an answer that was
        unusable fails the call waiting for it."""
        if error.frame_type in (MessageType.CALL_RESULT, MessageType.CALL_ERROR):
            waiter = self._pending.pop(error.message_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_exception(error)
        if error.answerable:
            await self._send_error(error)
        elif error.frame_type is MessageType.CALL_RESULT and self.version is OcppVersion.V21:
            refusal = call_error(
                error.message_id,
                error.code,
                error.description,
                self.version,
                kind=MessageType.CALL_RESULT_ERROR,
            )
            await self._send(refusal.to_json())

    async def _send_error(self, error: FrameError) -> None:
        self.errors_sent += 1
        frame = call_error(
            error.message_id, error.code, error.description, self.version, **error.details
        )
        await self._send(frame.to_json())

    def _handler(self, action: str, kind: str) -> Callable[..., Any] | None:
        handlers: Mapping[str, Any] = self.route_map.get(action, {})
        handler: Callable[..., Any] | None = handlers.get(kind)
        return handler

    async def _answer(self, frame: Frame) -> None:
        action, message_id = str(frame.action), frame.message_id
        handler = self._handler(action, "_on_action")
        try:
            if handler is None:
                # OCPP-J: NotImplemented = the action is not known; NotSupported = known but
                # not supported here. (The ocpp package has the two the other way round.)
                if has_schema(action, Direction.REQUEST, self.version):
                    raise FrameError(
                        ErrorCode.NOT_SUPPORTED, f"{action} is not supported here", message_id
                    )
                raise FrameError(
                    ErrorCode.NOT_IMPLEMENTED,
                    f"{shown(action)} is not part of OCPP {self.version.value}",
                    message_id,
                )
            validate(frame.payload or {}, action, Direction.REQUEST, self.version, message_id)
            arguments = from_wire(frame.payload or {})
            result = handler(**arguments)
            if inspect.isawaitable(result):
                result = await result
            payload = to_wire(result, action, Direction.RESPONSE, self.version)
            try:
                validate(payload, action, Direction.RESPONSE, self.version, message_id)
            except FrameError as invalid:
                LOGGER.error("%s: our own %s answer is invalid: %s", self.id, action, invalid)
                raise FrameError(
                    ErrorCode.INTERNAL_ERROR, "the answer failed its schema", message_id
                ) from invalid
        except FrameError as error:
            await self._send_error(error)
            return
        except Exception:
            LOGGER.exception("%s: handling %s failed", self.id, action)
            await self._send_error(
                FrameError(ErrorCode.INTERNAL_ERROR, f"{action} could not be handled", message_id)
            )
            return
        await self._send(Frame(MessageType.CALL_RESULT, message_id, payload=payload).to_json())
        after = self._handler(action, "_after_action")
        if after is not None:
            outcome = after(**arguments)
            if inspect.isawaitable(outcome):
                task = asyncio.ensure_future(outcome)
                task.add_done_callback(_log_failure)

    async def _receive_send(self, frame: Frame) -> None:
        """A SEND expects no answer, not even an error: problems are only logged."""
        action = str(frame.action)
        handler = self._handler(action, "_on_action")
        if handler is None:
            LOGGER.info("%s: SEND %s ignored (no handler)", self.id, shown(action))
            return
        try:
            validate(frame.payload or {}, action, Direction.REQUEST, self.version, send=True)
            result = handler(**from_wire(frame.payload or {}))
            if inspect.isawaitable(result):
                await result
        except Exception:
            LOGGER.exception("%s: SEND %s failed", self.id, action)

    async def request(
        self, action: str, payload: Mapping[str, Any], timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Send a CALL (payload in wire names) and return the answer's payload.

        Raises :class:`FrameError` if our own payload breaks the schema,
        :class:`CallRefusedError` if the peer refuses it, ``TimeoutError`` if it is silent.
        """
        validate(payload, action, Direction.REQUEST, self.version)
        message_id = str(uuid.uuid4())
        waiter: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        async with self._call_lock:  # OCPP: one CALL in flight per direction
            self._pending[message_id] = waiter
            try:
                await self._send(Frame(MessageType.CALL, message_id, action, payload).to_json())
                # asyncio.timeout: 3.11's wait_for can swallow a cancellation at its timeout.
                async with asyncio.timeout(
                    timeout_s if timeout_s is not None else self._response_timeout
                ):
                    answer = await waiter
            finally:
                self._pending.pop(message_id, None)
        if answer.type is MessageType.CALL_ERROR:
            raise CallRefusedError(
                action, str(answer.error_code), str(answer.error_description or "")
            )
        result = dict(answer.payload or {})
        try:
            validate(result, action, Direction.RESPONSE, self.version, message_id)
        except FrameError as error:
            LOGGER.warning("%s: invalid %s answer: %s", self.id, action, error.description)
            # OCPP 2.1 says so with a CALLRESULTERROR; older versions have no way to.
            if self.version is OcppVersion.V21:
                refusal = call_error(
                    message_id,
                    error.code,
                    error.description,
                    self.version,
                    kind=MessageType.CALL_RESULT_ERROR,
                )
                await self._send(refusal.to_json())
            raise
        return result

    async def send_unconfirmed(self, action: str, payload: Mapping[str, Any]) -> None:
        """An OCPP 2.1 SEND: a message that gets no answer."""
        if self.version is not OcppVersion.V21:
            raise ValueError(f"SEND frames are OCPP 2.1 only, this peer speaks {self.version}")
        validate(payload, action, Direction.REQUEST, self.version, send=True)
        frame = Frame(MessageType.SEND, str(uuid.uuid4()), action, payload)
        await self._send(frame.to_json())

    async def call(
        self,
        payload: Any,
        suppress: bool = True,
        unique_id: str | None = None,
        skip_schema_validation: bool = False,
    ) -> Any:
        """The ``ocpp`` package's ``call`` with a dataclass, on our wire layer."""
        if not is_dataclass(payload) or isinstance(payload, type):
            raise TypeError("call() takes an ocpp call dataclass; use request() for a mapping")
        action = type(payload).__name__
        wire = to_wire(payload, action, Direction.REQUEST, self.version)
        try:
            answer = await self.request(action, wire)
        except CallRefusedError:
            if suppress:
                return None
            raise
        result_type = getattr(self._call_result, action)
        return result_type(**from_wire(answer))


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        LOGGER.error("after-action hook failed", exc_info=task.exception())
