"""Export the contract's JSON Schemas: ``python -m contracts.export [--check]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import BaseModel

from contracts.catalog import COMMANDS
from contracts.results import CommandResult
from contracts.status import CallStatusEvent

SCHEMA_DIR = Path(__file__).parent / "schemas"
MODELS: dict[str, type[BaseModel]] = {
    **{spec.model.__name__: spec.model for spec in COMMANDS},
    "CommandResult": CommandResult,
    "CallStatusEvent": CallStatusEvent,
}


def render_schemas() -> dict[str, str]:
    """File name -> schema text, exactly as checked in."""
    rendered = {}
    for name, model in MODELS.items():
        schema = model.model_json_schema(by_alias=True)
        schema["$id"] = f"https://voicebus.dev/schemas/{name}.json"
        rendered[f"{name}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return rendered


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if checked-in schemas drift")
    args = parser.parse_args()
    drift = []
    for file_name, text in render_schemas().items():
        path = SCHEMA_DIR / file_name
        if args.check:
            if not path.exists() or path.read_text() != text:
                drift.append(file_name)
        else:
            path.write_text(text)
    if drift:
        print(f"schemas drift from the models: {', '.join(drift)}; run `make schemas`")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
