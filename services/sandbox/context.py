"""Everything one running sandbox holds, passed to the handlers."""

from __future__ import annotations

from dataclasses import dataclass

from services.sandbox.callbacks import CallbackSender
from services.sandbox.faults import FaultInjector
from services.sandbox.inbound import InboundFlows
from services.sandbox.lifecycle import CallRunner
from services.sandbox.ratelimit import RateLimiter
from services.sandbox.reqlog import RequestLog
from services.sandbox.settings import SandboxSettings
from services.sandbox.state import CallStore


@dataclass
class Sandbox:
    settings: SandboxSettings
    store: CallStore
    sender: CallbackSender
    runner: CallRunner
    faults: FaultInjector
    limiter: RateLimiter
    requests: RequestLog
    inbound: InboundFlows

    @classmethod
    def build(cls, settings: SandboxSettings) -> Sandbox:
        store = CallStore()
        sender = CallbackSender(settings)
        runner = CallRunner(settings, store, sender)
        return cls(
            settings=settings,
            store=store,
            sender=sender,
            runner=runner,
            faults=FaultInjector(),
            limiter=RateLimiter(
                settings.voice_calls_per_minute,
                settings.get_per_minute,
                settings.legs_per_minute,
                enabled=settings.rate_limits_enabled,
            ),
            requests=RequestLog(settings.request_log_size),
            inbound=InboundFlows(settings, runner, sender),
        )

    async def start(self) -> None:
        await self.sender.start()

    async def close(self) -> None:
        await self.runner.close()
        await self.sender.close()
