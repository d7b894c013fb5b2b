"""Inbound calls: a caller rings an ExoPhone and its call flow runs (test-only admin call).

``POST /_sandbox/inbound`` starts one (:class:`InboundSpec`). The flow, as Exotel's call
flows and its Passthru document describe it (passthru-applet.txt):

```
caller rings the ExoPhone: the caller's leg (origin inbound) is on the line, phase flow
  ─(queue_seconds: greeting, gather)→ Passthru "before_connect" (CallType call-attempt,
     the gathered digits)
  → Connect applet dials the agent: leg origin outbound-dial, phase agent_ringing
  ─(ring_seconds)→ the agent answers (phase connected) or not (its number's last digits)
  ─(talk_seconds, or until a hang-up)→ the Connect applet ends, its monitor legs too
  → Passthru "after_connect" (CallType completed | incomplete | client-hangup,
     DialWhomNumber, DialCallDuration, RecordingUrl)
  → the flow ends: the call is over (v1 call details: Direction inbound)
```

A hang-up of the agent's leg ends the Connect applet and the flow goes on to its last
Passthru; a hang-up of the caller's leg (or ``POST /_sandbox/calls/{sid}/end``) is the
caller leaving, and the flow still sends its last Passthru (Exotel's CallType
``client-hangup`` when the agent was still ringing). A ``sync`` Passthru holds the flow
until it is answered (the answer's status and time are in the call's ``callbacks``);
``async`` does not wait. A Passthru is not retried.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.sandbox import clock, numbers, payloads
from services.sandbox.callbacks import CallbackSender
from services.sandbox.lifecycle import CallRunner, pause
from services.sandbox.settings import SandboxSettings
from services.sandbox.state import Call, Leg, new_sid

PassthruPoint = Literal["before_connect", "after_connect"]
#: hang-ups that are the caller leaving (rather than the agent's leg ending)
CALLER_LEFT = frozenset({"hangup-customer", "admin"})


def _every_point() -> list[PassthruPoint]:
    return ["before_connect", "after_connect"]


class InboundSpec(BaseModel):
    """One simulated inbound call."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from", min_length=3, description="The caller's number.")
    exophone: str = Field(min_length=3, description="The ExoPhone the caller rings.")
    agent: str = Field(min_length=3, description="Whom the flow's Connect applet dials.")
    passthru_url: str | None = Field(
        default=None, description="The flow's Passthru applet URL (as on the dashboard)."
    )
    passthru_mode: Literal["sync", "async"] = "sync"
    passthru_points: list[PassthruPoint] = Field(
        default_factory=_every_point,
        description="Where the flow has Passthru applets.",
    )
    digits: str | None = Field(default=None, description="What the flow's Gather collects.")
    record: bool = Field(default=False, description="The Connect applet records.")
    talk_seconds: float | None = Field(
        default=None, ge=0, description="Conversation length; null: until hung up."
    )
    app_id: str | None = Field(default="926", description="The call flow's id (flow_id).")
    app_name: str | None = Field(default="Inbound support", description="Its name.")
    account_sid: str | None = Field(default=None, description="Default: the sandbox's.")


class InboundFlows:
    """Starts inbound calls and runs their call flows."""

    def __init__(self, settings: SandboxSettings, runner: CallRunner, sender: CallbackSender):
        self._settings = settings
        self._runner = runner
        self._sender = sender

    def start(self, spec: InboundSpec) -> Call:
        at = clock.now()
        call = Call(
            sid=new_sid(),
            account_sid=spec.account_sid or self._settings.account_sid,
            api="v1",
            from_number=spec.from_,
            to_number=spec.exophone,
            caller_id=spec.exophone,
            created=at,
            updated=at,
            record=spec.record,
            direction="inbound",
            app_id=spec.app_id,
            app_name=spec.app_name,
            digits=spec.digits,
            agent_number=spec.agent,
            request=spec.model_dump(by_alias=True),
        )
        self._runner.start_flow(call, self._flow(call, spec))
        return call

    async def _flow(self, call: Call, spec: InboundSpec) -> None:
        s = self._settings
        at = clock.now()
        caller = call.add_leg("customer", call.from_number, at)
        caller.status, caller.answered_at = "in-progress", at  # the flow picks up
        call.phase, call.status, call.start_time = "flow", "in-progress", at
        call.touch(at)
        if not await pause(call.wake, s.queue_seconds) and "before_connect" in spec.passthru_points:
            await self._passthru(call, spec, "call-attempt", after_connect=False)
        if call.hangup_cause is not None:  # the caller left in the IVR
            self._caller_left(call, caller)
            self._runner.finish_call(call, "completed", "completed", cause=call.hangup_cause)
            return
        call_type, status, ccm_status = await self._connect(call, spec)
        self._runner.end_monitors(call)
        call.phase = "flow"
        if _caller_gone(call):
            self._caller_left(call, caller)
        if "after_connect" in spec.passthru_points:
            await self._passthru(call, spec, call_type, after_connect=True)
        caller.finish("completed", clock.now())
        self._runner.finish_call(call, status, ccm_status, cause=call.hangup_cause or "flow-end")

    async def _connect(self, call: Call, spec: InboundSpec) -> tuple[str, str, str]:
        """The Connect applet: (CallType, v1 status, v2/v3 status) once it is over."""
        s = self._settings
        at = clock.now()
        agent = call.add_leg("agent", spec.agent, at)
        agent.status, call.phase = "ringing", "agent_ringing"
        call.touch(at)
        if await pause(call.wake, s.ring_seconds):
            agent.finish("canceled", clock.now())
            if call.hangup_cause == "hangup-agent":  # its own leg hung up while ringing
                return "incomplete", "no-answer", "to_leg_unanswered"
            return "client-hangup", "canceled", "from_leg_cancelled"
        outcome = numbers.agent_outcome(spec.agent)
        if outcome != "answer":
            agent.finish(outcome, clock.now())
            return "incomplete", "no-answer", "to_leg_unanswered"
        at = clock.now()
        agent.status, agent.answered_at, agent.updated = "in-progress", at, at
        call.phase = "connected"
        call.touch(at)
        talk = s.long_call_seconds if spec.talk_seconds is None else spec.talk_seconds
        await pause(call.wake, talk)
        agent.finish("completed", clock.now())
        call.touch(clock.now())
        return "completed", "completed", "completed"

    @staticmethod
    def _caller_left(call: Call, caller: Leg) -> None:
        caller.finish("completed", clock.now())
        call.touch(clock.now())

    async def _passthru(
        self, call: Call, spec: InboundSpec, call_type: str, *, after_connect: bool
    ) -> None:
        if not spec.passthru_url:
            return
        payload = payloads.passthru_payload(
            call,
            call_type,
            after_connect=after_connect,
            recording_base=self._settings.recording_base_url,
        )
        record = self._sender.send(
            call.sid,
            call.callbacks,
            event="passthru",
            url=spec.passthru_url,
            method="GET",
            content_type="",
            payload=payload,
            retries=0,
        )
        if spec.passthru_mode == "sync":
            await record.settled.wait()


def _caller_gone(call: Call) -> bool:
    return call.hangup_cause in CALLER_LEFT
