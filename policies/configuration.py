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
from typing import Any


def config_problems(choices: dict[str, str], groups: dict[str, list[str]],
                    rules: list[dict[str, Any]],
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


class ConfigSpace:
    """The option combinations of one configurable item, prepared once for many users:
    option attribute keys, materials, and the compatibility verdict of each combination
    (cached as combinations are met). ``best`` is ``best_configuration`` for this item.

    >>> space = ConfigSpace([{"group_id": "color", "options": [
    ...     {"option_id": "red", "attributes": {"color": "red"}},
    ...     {"option_id": "black", "attributes": {"color": "black"}}]}], [])
    >>> space.best({"color=black": 1.0}, {})
    ({'color': 'black'}, 1.0)
    >>> space.best({"color=black": 1.0}, {}, option_days={"color:black": 9}, max_days=5)
    ({'color': 'red'}, 0.0)
    """

    def __init__(self, groups: list[dict[str, Any]], compatibility: list[dict[str, Any]]) -> None:
        self.compatibility = compatibility
        # per group: (group id, [(catalog index, option id, attribute keys, price delta)])
        self.groups = [(g["group_id"], [
            (i, o["option_id"], tuple(f"{k}={v}" for k, v in o.get("attributes", {}).items()),
             o.get("price_delta", 0.0)) for i, o in enumerate(g["options"])]) for g in groups]
        self.group_ids = [g for g, _ in self.groups]
        self.names = {g["group_id"]: [o["option_id"] for o in g["options"]] for g in groups}
        self.materials = {f"{g['group_id']}:{o['option_id']}": o["material_sku"]
                          for g in groups for o in g["options"] if o.get("material_sku")}
        self.material_skus = sorted({o["material_sku"] for g in groups for o in g["options"]
                                     if o.get("material_sku")})
        self.required = {g["group_id"] for g in groups if g.get("required", True)}
        # option ids in group order -> (compatible, the materials the combination uses)
        self._combos: dict[tuple[str, ...], tuple[bool, tuple[str, ...]]] = {}

    def _combo(self, ids: tuple[str, ...]) -> tuple[bool, tuple[str, ...]]:
        hit = self._combos.get(ids)
        if hit is None:
            choices = dict(zip(self.group_ids, ids, strict=True))
            ok = not config_problems(choices, self.names, self.compatibility, self.materials,
                                     {}, self.required, check_materials=False)
            chosen = sorted(f"{g}:{o}" for g, o in choices.items())
            mats = tuple(self.materials[c] for c in chosen if c in self.materials)
            hit = self._combos[ids] = (ok, mats)
        return hit

    def best(self, affinity: dict[str, float], material_available: dict[str, int | None],
             max_combinations: int = 4096, option_days: dict[str, int] | None = None,
             max_days: int | None = None) -> tuple[dict[str, str], float] | None:
        """``option_days`` (``group:option`` → days it adds to the lead time, e.g. made to
        order) and ``max_days``: a combination whose slowest option adds more is not
        feasible (the delivery window)."""
        days = option_days or {}
        ranked = []  # per group: [(option id, score)] best first
        for _, opts in self.groups:
            scored = [(i, oid, sum(affinity.get(k, 0.0) for k in keys), delta)
                      for i, oid, keys, delta in opts]
            scored.sort(key=lambda t: (-t[2], t[0], t[3]))
            ranked.append([(oid, sc) for _, oid, sc, _ in scored])
        while math.prod(len(opts) for opts in ranked) > max_combinations:
            longest = max(range(len(ranked)), key=lambda i: len(ranked[i]))
            ranked[longest] = ranked[longest][:-1]
        best: tuple[tuple[str, ...], float] | None = None
        get = material_available.get
        for combo in itertools.product(*ranked):
            score = sum(sc for _, sc in combo)
            if best is not None and score <= best[1]:
                continue
            ids = tuple(o for o, _ in combo)
            if max_days is not None and days and max(
                    (days.get(f"{g}:{o}", 0) for g, o in zip(self.group_ids, ids, strict=True)),
                    default=0) > max_days:
                continue
            ok, mats = self._combo(ids)
            if ok and all((a := get(m)) is not None and a >= 1 for m in mats):
                best = (ids, score)
        if best is None:
            return None
        return dict(zip(self.group_ids, best[0], strict=True)), best[1]


def best_configuration(groups: list[dict[str, Any]], compatibility: list[dict[str, Any]],
                       affinity: dict[str, float], material_available: dict[str, int | None],
                       max_combinations: int = 4096,
                       ) -> tuple[dict[str, str], float] | None:
    """The valid option combination the user's attribute affinities like most.

    Ties go to the catalog's option order (then the cheaper); each group's options are
    tried best first, and past ``max_combinations`` only the best options of each group are
    kept. Returns ``(choices, score)``, or None when no combination is valid. For many
    users of one item, build its ``ConfigSpace`` once.

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
    return ConfigSpace(groups, compatibility).best(affinity, material_available,
                                                   max_combinations)
