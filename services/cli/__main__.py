"""``python -m services.cli``: the ``voicebus`` command."""

from services.cli.app import main

main()
