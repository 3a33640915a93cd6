"""Validity of a product configuration: required groups, compatibility, material stock.

Compatibility rules read ``when`` an option (``group:option``) is chosen, the options it
``requires`` and ``excludes``. The checker returns the problems found (empty = valid); the
``configuration`` policy rule denies a configuration with problems.

>>> groups = {"frame": ["alu", "carbon"], "color": ["red", "black"]}
>>> rules = [{"when": "frame:carbon", "excludes": ["color:red"]}]
>>> config_problems({"frame": "carbon", "color": "red"}, groups, rules, {}, {})
('frame:carbon excludes color:red',)
>>> config_problems({"frame": "alu"}, groups, rules, {}, {})
('required group color has no choice',)
>>> config_problems({"frame": "carbon", "color": "black"}, groups, rules,
...                 {"frame:carbon": "MAT-c"}, {"MAT-c": 0})
('material MAT-c for frame:carbon is out of stock',)
"""

from __future__ import annotations


def config_problems(choices: dict[str, str], groups: dict[str, list[str]], rules: list[dict],
                    materials: dict[str, str], material_available: dict[str, int | None],
                    required: set[str] | None = None,
                    check_materials: bool = True) -> tuple[str, ...]:
    """Problems of ``choices`` (group -> option) for an item with ``groups`` (group ->
    options), compatibility ``rules``, ``materials`` (group:option -> material sku) and
    ``material_available`` (material sku -> units available, None = unknown)."""
    problems: list[str] = []
    required = set(groups) if required is None else required
    for g in sorted(required):
        if g not in choices:
            problems.append(f"required group {g} has no choice")
    chosen = set()
    for g, o in sorted(choices.items()):
        if g not in groups:
            problems.append(f"unknown group {g}")
        elif o not in groups[g]:
            problems.append(f"unknown option {g}:{o}")
        chosen.add(f"{g}:{o}")
    for r in rules:
        if r["when"] in chosen:
            for req in r.get("requires", ()):
                if req not in chosen:
                    problems.append(f"{r['when']} requires {req}")
            for exc in r.get("excludes", ()):
                if exc in chosen:
                    problems.append(f"{r['when']} excludes {exc}")
    if check_materials:
        for opt in sorted(chosen):
            mat = materials.get(opt)
            if mat is not None:
                avail = material_available.get(mat)
                if avail is None or avail < 1:
                    problems.append(f"material {mat} for {opt} is "
                                    f"{'of unknown stock' if avail is None else 'out of stock'}")
    return tuple(problems)
