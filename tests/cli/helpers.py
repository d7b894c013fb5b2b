"""Run the ``voicebus`` command in-process (typer's CliRunner) on a thread of its own, so
its ``asyncio.run`` never meets the test session's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from typer.testing import CliRunner, Result

from services.cli.app import app


def invoke(
    args: Sequence[str], *, env: Mapping[str, str | None] | None = None, stdin: str | None = None
) -> Result:
    runner = CliRunner()
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(
            runner.invoke, app, list(args), input=stdin, env=dict(env or {})
        ).result()


async def ainvoke(
    args: Sequence[str], *, env: Mapping[str, str | None] | None = None, stdin: str | None = None
) -> Result:
    return await asyncio.to_thread(invoke, args, env=env, stdin=stdin)
