"""Cost budgets on tool calls: what a decision, a user and a period may spend.

Some tools cost money per call (an ERP or a pricing engine billed per request). A policy
pack's ``[budgets]`` table (``policies.pack.CostBudgets``) caps what is spent:

- ``per_decision``: one decision's calls together;
- ``per_user`` within ``per_user_period_s``: one user's decisions together;
- ``per_period`` within ``period_s``: every decision of this ledger together.

Periods are windows of *event time* (the trigger's ``ts``): a replay spends the same
budgets the same way. A call the budget cannot afford is not made: ``ToolRuntime.call``
returns ``over_budget`` and the plan takes the step's declared fallback (a cached fact,
a cheaper tool) or skips an optional step; the record says which limit refused.

>>> from policies.pack import CostBudgets
>>> ledger = CostLedger(CostBudgets(per_decision=0.05, per_user=0.08, per_user_period_s=60))
>>> b = ledger.budget("user-ref-1", ts=1_000)
>>> b.refusal(0.03), b.charge(0.03), b.refusal(0.03)
(None, None, 'per_decision: 0.03 spent of 0.05, 0.03 more refused')
>>> ledger.budget("user-ref-1", ts=2_000).charge(0.03)  # the same minute
>>> ledger.budget("user-ref-1", ts=3_000).refusal(0.03)  # the user's budget is spent
'per_user: 0.06 spent of 0.08 in 60 s, 0.03 more refused'
>>> ledger.budget("user-ref-1", ts=61_000).refusal(0.03) is None  # a new period
True
"""

from __future__ import annotations

from collections import OrderedDict

from policies.pack import CostBudgets

_EPS = 1e-9


class CostLedger:
    """What was spent per user and per period (event-time windows); bounded: only the
    newest ``max_users`` user windows are remembered."""

    def __init__(self, limits: CostBudgets | None, max_users: int = 100_000) -> None:
        self.limits = limits or CostBudgets()
        self.max_users = max_users
        self.per_user: OrderedDict[tuple[str, int], float] = OrderedDict()
        self.per_period: dict[int, float] = {}
        self.spent_total = 0.0
        self.refused = 0

    def budget(self, user_ref: str, ts: int) -> DecisionBudget:
        """The budget of one decision of ``user_ref`` triggered at event time ``ts``."""
        lim = self.limits
        user_w = (user_ref, ts // (lim.per_user_period_s * 1000))
        period_w = ts // (lim.period_s * 1000)
        return DecisionBudget(self, user_w, period_w)

    def _add(self, user_w: tuple[str, int], period_w: int, cost: float) -> None:
        self.per_user[user_w] = self.per_user.get(user_w, 0.0) + cost
        self.per_user.move_to_end(user_w)
        while len(self.per_user) > self.max_users:
            self.per_user.popitem(last=False)
        for old in [w for w in self.per_period if w < period_w - 1]:
            del self.per_period[old]
        self.per_period[period_w] = self.per_period.get(period_w, 0.0) + cost
        self.spent_total += cost


class DecisionBudget:
    """One decision's view of the ledger: ``refusal(cost)`` says whether a call costing
    ``cost`` is refused (and by which limit), ``charge(cost)`` books what a call cost."""

    __slots__ = ("ledger", "period_w", "spent", "user_w", "verdicts")

    def __init__(self, ledger: CostLedger, user_w: tuple[str, int], period_w: int) -> None:
        self.ledger, self.user_w, self.period_w = ledger, user_w, period_w
        self.spent = 0.0
        self.verdicts: list[str] = []

    def refusal(self, cost: float) -> str | None:
        if cost <= 0:
            return None
        lim, led = self.ledger.limits, self.ledger
        checks = (("per_decision", lim.per_decision, self.spent, ""),
                  ("per_user", lim.per_user, led.per_user.get(self.user_w, 0.0),
                   f" in {lim.per_user_period_s} s"),
                  ("per_period", lim.per_period, led.per_period.get(self.period_w, 0.0),
                   f" in {lim.period_s} s"))
        for name, limit, spent, window in checks:
            if limit is not None and spent + cost > limit + _EPS:
                why = (f"{name}: {round(spent, 6)} spent of {limit}{window}, "
                       f"{round(cost, 6)} more refused")
                self.verdicts.append(why)
                led.refused += 1
                return why
        return None

    def charge(self, cost: float) -> None:
        if cost > 0:
            self.spent += cost
            self.ledger._add(self.user_w, self.period_w, cost)
