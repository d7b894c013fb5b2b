"""The ``voicebus`` command line (typer): ``send``, ``tail``, ``dlq``, ``topics``, ``asyncapi``.

Run it as ``voicebus`` (installed script) or ``python -m services.cli``. Exit codes are in
:mod:`services.cli.exits`; the guide is docs/cli.md.
"""
