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

import itertools
import math


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


def option_score(option: dict, affinity: dict[str, float]) -> float:
    """How much a user would like an option: their affinity to its attribute values."""
    return sum(affinity.get(f"{k}={v}", 0.0) for k, v in option.get("attributes", {}).items())


def best_configuration(groups: list[dict], compatibility: list[dict],
                       affinity: dict[str, float], material_available: dict[str, int | None],
                       max_combinations: int = 4096,
                       ) -> tuple[dict[str, str], float] | None:
    """The valid option combination the user's attribute affinities like most.

    Ties go to the catalog's option order (then the cheaper); each group's options are
    tried best first, and past ``max_combinations`` only the best options of each group are
    kept. Returns ``(choices, score)``, or None when no combination is valid.

    >>> groups = [{"group_id": "frame", "options": [
    ...     {"option_id": "alu", "material_sku": "M-a"},
    ...     {"option_id": "carbon", "material_sku": "M-c"}]},
    ...     {"group_id": "color", "options": [
    ...     {"option_id": "red", "attributes": {"color": "red"}},
    ...     {"option_id": "black", "attributes": {"color": "black"}}]}]
    >>> rules = [{"when": "frame:carbon", "excludes": ["color:red"]}]
    >>> best_configuration(groups, rules, {"color=red": 2.0}, {"M-a": 0, "M-c": 5})
    ({'frame': 'carbon', 'color': 'black'}, 0.0)
    """
    ranked = []  # per group: (group id, [(option id, score)] best first)
    for g in groups:
        scored = [(i, o, option_score(o, affinity)) for i, o in enumerate(g["options"])]
        scored.sort(key=lambda t: (-t[2], t[0], t[1].get("price_delta", 0.0)))
        ranked.append((g["group_id"], [(o["option_id"], sc) for _, o, sc in scored]))
    while math.prod(len(opts) for _, opts in ranked) > max_combinations:
        longest = max(range(len(ranked)), key=lambda i: len(ranked[i][1]))
        ranked[longest] = (ranked[longest][0], ranked[longest][1][:-1])
    names = {g: [o["option_id"] for o in g_opts] for g, g_opts in
             ((g["group_id"], g["options"]) for g in groups)}
    materials = {f"{g['group_id']}:{o['option_id']}": o["material_sku"]
                 for g in groups for o in g["options"] if o.get("material_sku")}
    required = {g["group_id"] for g in groups if g.get("required", True)}
    group_ids = [g for g, _ in ranked]
    best: tuple[dict[str, str], float] | None = None
    for combo in itertools.product(*(opts for _, opts in ranked)):
        score = sum(sc for _, sc in combo)
        if best is not None and score <= best[1]:
            continue
        choices = {g: o for g, (o, _) in zip(group_ids, combo, strict=True)}
        if not config_problems(choices, names, compatibility, materials, material_available,
                               required):
            best = (choices, score)
    return best
