"""Drives simulated calls and monitor legs through their lives, and ends them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from services.sandbox import clock, numbers, payloads
from services.sandbox.callbacks import CallbackSender
from services.sandbox.settings import SandboxSettings
from services.sandbox.state import Call, CallStore, Leg, Subscription

log = logging.getLogger("services.sandbox.lifecycle")


async def pause(event: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds``; True when ``event`` fired first (the call or leg was ended)."""
    if event.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=max(0.0, seconds))
        return True
    return False


class CallRunner:
    """Owns the asyncio tasks that move calls along; every state change goes through it."""

    def __init__(self, settings: SandboxSettings, store: CallStore, sender: CallbackSender) -> None:
        self._settings = settings
        self._store = store
        self._sender = sender
        self._tasks: set[asyncio.Task[None]] = set()

    # -- tasks -----------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start_flow(self, call: Call, flow: Coroutine[Any, Any, None]) -> None:
        """Keep ``call`` and run ``flow`` as its life (an inbound call's call flow)."""
        self._store.add(call)
        self._spawn(self._guarded(call, flow))

    async def _guarded(self, call: Call, flow: Coroutine[Any, Any, None]) -> None:
        try:
            await flow
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call %s crashed; ending it", call.sid)
            if not call.ended:
                self.finish_call(call, "failed", "failed", cause="sandbox-error")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def start(self, call: Call) -> None:
        self._store.add(call)
        self._spawn(self._run(call))

    # -- the call --------------------------------------------------------------
    async def _run(self, call: Call) -> None:
        try:
            await self._drive(call)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call %s crashed; ending it", call.sid)
            self.end_call(call, cause="sandbox-error")

    async def _drive(self, call: Call) -> None:
        s = self._settings
        if await pause(call.wake, s.queue_seconds):
            return
        at = clock.now()
        call.phase, call.status, call.start_time = "agent_ringing", "ringing", at
        agent = call.add_leg("agent", call.from_number, at)
        agent.status = "ringing"
        call.touch(at)
        if await pause(call.wake, s.ring_seconds):
            return
        outcome = numbers.agent_outcome(call.from_number)
        if call.api == "v1" and numbers.is_busy_device(call.from_number):
            outcome = "busy"  # v1 places the call anyway; the busy device rejects it
        if outcome != "answer":
            at = clock.now()
            agent.finish(outcome, at)
            self._finish(call, outcome, "from_leg_unanswered", cause=f"agent-{outcome}")
            return
        self._answer(call, agent)
        if call.to_number is None:  # connected to a call flow, not to a second number
            call.phase, call.status = "connected", "in-progress"
            if await pause(call.wake, self._talk_seconds(call, long=False)):
                return
            self.end_call(call, cause="completed")
            return
        await self._ring_customer(call, agent, call.to_number)

    async def _ring_customer(self, call: Call, agent: Leg, to_number: str) -> None:
        s = self._settings
        at = clock.now()
        call.phase = "customer_ringing"
        customer = call.add_leg("customer", to_number, at)
        customer.status = "ringing"
        call.touch(at)
        if await pause(call.wake, s.ring_seconds):
            return
        outcome = numbers.customer_outcome(to_number)
        if outcome not in ("answer", "long"):
            at = clock.now()
            customer.finish(outcome, at)
            agent.finish("completed", at)
            self._finish(call, outcome, "to_leg_unanswered", cause=f"customer-{outcome}")
            return
        call.phase, call.status = "connected", "in-progress"
        self._answer(call, customer)
        if await pause(call.wake, self._talk_seconds(call, long=outcome == "long")):
            return
        self.end_call(call, cause="completed" if outcome == "answer" else "long-call-limit")

    def _talk_seconds(self, call: Call, *, long: bool) -> float:
        talk = self._settings.long_call_seconds if long else self._settings.talk_seconds
        return talk if call.time_limit is None else min(talk, float(call.time_limit))

    def _answer(self, call: Call, leg: Leg) -> None:
        at = clock.now()
        leg.status, leg.answered_at, leg.updated = "in-progress", at, at
        call.touch(at)
        self._notify(call, "answered")

    # -- ending ----------------------------------------------------------------
    def end_call(self, call: Call, *, cause: str) -> None:
        """End the call now, whatever it is doing (hang-up, admin, time's up).

        An inbound call's flow goes on after its Connect applet: a hang-up only tells the
        flow (``hangup_cause``), which sends its last Passthru and then ends the call.
        """
        if call.ended:
            return
        if call.inbound:
            if call.hangup_cause is None:
                call.hangup_cause = cause
                call.wake.set()
            return
        at = clock.now()
        agent, customer = call.leg("agent"), call.leg("customer")
        if call.phase in ("queued", "agent_ringing"):
            if agent is not None:
                agent.finish("canceled", at)
            self._finish(call, "canceled", "from_leg_unanswered", cause=cause)
        elif call.phase == "customer_ringing":
            if customer is not None:
                customer.finish("canceled", at)
            if agent is not None:
                agent.finish("completed", at)
            self._finish(call, "canceled", "from_leg_cancelled", cause=cause)
        else:
            for leg in (agent, customer):
                if leg is not None:
                    leg.finish("completed", at)
            self._finish(call, "completed", "completed", cause=cause)

    def end_monitors(self, call: Call) -> None:
        """The supervisors' legs end (with the call, or an inbound call's Connect)."""
        moment = clock.now()
        for leg in call.monitor_legs:
            if not leg.ended:
                leg.finish("completed" if leg.active else "canceled", moment)
                self._notify_leg(call, leg)

    def finish_call(self, call: Call, status: str, ccm_status: str, *, cause: str) -> None:
        """The call is over: its status (v1, v2/v3), its end, its terminal callbacks."""
        self._finish(call, status, ccm_status, cause=cause)

    def _finish(self, call: Call, status: str, ccm_status: str, *, cause: str) -> None:
        moment = clock.now()
        self.end_monitors(call)
        call.status, call.ccm_status = status, ccm_status
        call.end_time, call.phase, call.end_cause = moment, "ended", cause
        call.touch(moment)
        call.wake.set()
        log.info("call %s ended status=%s cause=%s", call.sid, status, cause)
        self._notify(call, "terminal")

    # -- monitor legs ------------------------------------------------------------
    def add_monitor(
        self,
        call: Call,
        phone_number: str,
        action: str,
        *,
        target_leg_sid: str | None,
        custom_field: str | None,
        subscriptions: list[Subscription],
    ) -> Leg:
        at = clock.now()
        leg = call.add_leg("monitor", phone_number, at)
        leg.status, leg.last_action = "ringing", action
        leg.target_leg_sid, leg.custom_field = target_leg_sid, custom_field
        leg.subscriptions = subscriptions
        call.touch(at)
        self._spawn(self._ring_monitor(call, leg))
        return leg

    async def _ring_monitor(self, call: Call, leg: Leg) -> None:
        if await pause(leg.wake, self._settings.ring_seconds) or call.ended:
            return
        outcome = numbers.agent_outcome(leg.phone_number)
        at = clock.now()
        if outcome != "answer":
            leg.finish(outcome, at)
            self._notify_leg(call, leg)
            return
        leg.status, leg.answered_at, leg.updated = "in-progress", at, at
        call.touch(at)

    def upgrade(self, call: Call, leg: Leg, action: str, target_leg_sid: str | None) -> None:
        at = clock.now()
        leg.last_action, leg.updated = action, at
        if target_leg_sid:
            leg.target_leg_sid = target_leg_sid
        call.touch(at)

    def hangup_leg(self, call: Call, leg: Leg) -> None:
        """Hang up one leg; the agent's or the customer's ends the whole call."""
        at = clock.now()
        leg.last_action, leg.updated = "hangup", at
        if leg.role == "monitor":
            leg.finish("completed" if leg.active else "canceled", at)
            call.touch(at)
            self._notify_leg(call, leg)
            return
        self.end_call(call, cause=f"hangup-{leg.role}")

    # -- callbacks ---------------------------------------------------------------
    def _notify(self, call: Call, event: str) -> None:
        base = self._settings.recording_base_url
        for sub in call.subscriptions:
            if call.api == "v1":
                if sub.event == "default" and event == "terminal":
                    payload = payloads.v1_payload(call, "default", base)
                elif sub.event == event:
                    payload = payloads.v1_payload(call, event, base)
                else:
                    continue
            elif sub.event != event:
                continue
            elif call.api == "v2":
                payload = payloads.v2_payload(call, event, base)
            else:
                payload = payloads.v3_payload(call, event, base)
            self._sender.send(
                call.sid,
                call.callbacks,
                event=event,
                url=sub.url,
                method=sub.method,
                content_type=sub.content_type,
                payload=payload,
            )

    def _notify_leg(self, call: Call, leg: Leg) -> None:
        for sub in leg.subscriptions:
            if sub.event != "terminal":
                continue
            self._sender.send(
                call.sid,
                call.callbacks,
                event="terminal",
                url=sub.url,
                method=sub.method,
                content_type=sub.content_type,
                payload=payloads.monitor_leg_payload(call, leg),
                leg_sid=leg.sid,
            )
