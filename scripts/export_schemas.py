"""Export every event contract as a JSON Schema file under schemas/ (``make schemas``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.events import ALL_MODELS  # noqa: E402


def render() -> dict[str, str]:
    out = {}
    for model in ALL_MODELS:
        name = model.model_fields["type"].default
        schema = model.model_json_schema(mode="validation")
        schema["$id"] = f"urn:bespoke:schema:{name}:v1"
        out[f"{name}.v1.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


if __name__ == "__main__":
    d = ROOT / "schemas"
    d.mkdir(exist_ok=True)
    for old in d.glob("*.v1.json"):
        old.unlink()
    for name, text in render().items():
        (d / name).write_text(text)
    print(f"wrote {len(render())} schemas to {d}")
