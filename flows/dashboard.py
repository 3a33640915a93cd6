"""``python -m flows dashboard``: the drift dashboard of a run's outputs, one HTML page.

For merchandisers and ML engineers asking "is the model still good, since when not, and
what did the system do about it?". Read from a file run's output directory, over event
time (buckets of about a sixtieth of the run):

- the feed's ranker: feeds ranked by learned versions, by the heuristic, non-personalized;
  drift alerts marked (the loss monitor's red, rate reports orange, recoveries green),
  fallback periods shaded;
- the learned model per published version: prequential log-loss and share of positives;
- the share of served items acted on (attributed examples, ``training_examples``);
- decisions by kind (feeds, offers, configurations, suppressed) and policy denials by rule;
- feature drift: the quality monitors' PSI per view and field (heat map);
- dead letters and late events; the input's events per minute (the input monitor's
  reports).

The page is self-contained (Bokeh with its JavaScript inline: no network when viewed).
``--html FILE`` writes it; ``--serve PORT`` serves it on loopback, built again from the
files on every request (it refreshes itself every 10 s while a run writes). ``--input kafka``
reads the output topics instead (``KAFKA_BOOTSTRAP_SERVERS``, ``BESPOKE_TOPIC_PREFIX``, the
security settings): from their beginning, then what arrived before each request.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from connectors.file_sink import read_channel
from features import channels as ch

if TYPE_CHECKING:
    from connectors.topic_reader import TopicReader
    from flows.settings import Settings

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f")


class Lines(Protocol):
    """Where a run's outputs are read from: ``connectors.topic_reader.TopicReader`` (Kafka)."""

    def read(self, channel: str) -> list[bytes]: ...


Source = Path | Lines


def _docs(out: Source, channel: str) -> Iterator[dict[str, Any]]:
    lines = read_channel(out, channel) if isinstance(out, Path) else out.read(channel)
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("ts"), int):
            yield doc


class Buckets:
    """Event time cut into ``n`` equal buckets between ``lo`` and ``hi`` (ms)."""

    def __init__(self, lo: int, hi: int, n: int = 60) -> None:
        self.lo, self.width = lo, max(1, (hi - lo) // n + 1)
        self.n = n

    def of(self, ts: int) -> int:
        return min(self.n - 1, max(0, (ts - self.lo) // self.width))

    def starts(self) -> list[int]:
        return [self.lo + i * self.width for i in range(self.n)]


def collect(out: Source) -> dict[str, Any]:
    """Everything the page shows, as plain data (tested without Bokeh)."""
    records = list(_docs(out, ch.DECISION_RECORDS.name))
    examples = [e for e in _docs(out, ch.TRAINING_EXAMPLES.name)  # the feeds' (not offers')
                if e.get("decision_type", "feed_update") == "feed_update"]
    alerts = sorted(_docs(out, ch.DRIFT_ALERTS.name), key=lambda a: (a["ts"], a["id"]))
    models = sorted((m for m in _docs(out, ch.MODEL_CHANGES.name)
                     if m.get("model") == "feed_ranker"), key=lambda m: m["ts"])
    quality = list(_docs(out, ch.FEATURE_QUALITY.name))
    dead = list(_docs(out, ch.DEAD_LETTERS.name))
    late = list(_docs(out, ch.LATE_EVENTS.name))
    times = [d["ts"] for d in records] or [0]
    b = Buckets(min(times), max(times))
    starts = b.starts()

    def series(keys: list[str]) -> dict[str, list[int]]:
        return {k: [0] * b.n for k in keys}

    ranker = series(["learned", "heuristic", "non-personalized"])
    kinds = series(["feed_update", "offer", "configuration", "suppressed"])
    denials: dict[str, list[int]] = defaultdict(lambda: [0] * b.n)
    for r in records:
        i = b.of(r["ts"])
        kinds["suppressed" if r.get("suppressed") else r["decision_type"]][i] += 1
        if r["decision_type"] == "feed_update" and not r.get("suppressed"):
            m = r.get("model_version", "")
            ranker["learned" if m.startswith("feed-ranker-") else
                   "non-personalized" if m == "non-personalized" else "heuristic"][i] += 1
        for v in r.get("verdicts", ()):
            if v.get("effect") == "deny":
                denials[v["rule"]][i] += 1
    top_rules = [k for k, _ in Counter({k: sum(v) for k, v in denials.items()})
                 .most_common(6)]
    shown, acted = [0] * b.n, [0] * b.n
    for e in examples:
        i = b.of(e["ts"])
        shown[i] += 1
        acted[i] += e.get("label", 0)
    ctr = [a / s if s else None for a, s in zip(acted, shown, strict=True)]
    fallbacks: list[tuple[int, int, str]] = []  # (from, to, alert id)
    opened: dict[str, dict[str, Any]] = {}  # per model: the alert that sent it to fallback
    for a in alerts:
        subject = str(a.get("subject", ""))
        if a["action"] == "fallback":
            opened.setdefault(subject, a)
        elif (a["action"] == "recovered" and subject in opened
              and str(a.get("monitor", "")).endswith("-loss")):  # the model's return
            start = opened.pop(subject)
            fallbacks.append((start["ts"], a["ts"], start["id"]))
    for start in opened.values():
        fallbacks.append((start["ts"], max(times), start["id"]))
    psi: dict[tuple[str, str], list[float | None]] = defaultdict(lambda: [None] * b.n)
    for q in quality:
        if q.get("psi") is not None:
            cell = psi[(q["view"], q["field"])]
            i = b.of(q["ts"])
            cell[i] = max(cell[i] or 0.0, q["psi"])
    inputs = [0] * b.n  # the input monitor's closed buckets (view "input"): events, and
    closed = [0] * b.n  # how many of them fell in each of ours (a mean does not alias)
    for q in quality:
        if q.get("view") == "input" and q.get("field") == "events":
            inputs[b.of(q["ts"])] += int(q.get("observed", 0))
            closed[b.of(q["ts"])] += 1
    errors = [0] * b.n
    lates = [0] * b.n
    for d in dead:
        errors[b.of(d["ts"])] += 1
    for d in late:
        lates[b.of(d["ts"])] += 1
    return {"starts": starts, "width": b.width, "ranker": ranker, "kinds": kinds,
            "denials": {k: denials[k] for k in top_rules}, "ctr": ctr, "shown": shown,
            "alerts": [{k: a.get(k) for k in ("id", "ts", "action", "monitor", "statistic",
                                              "threshold", "model_version")}
                       for a in alerts],
            "fallbacks": fallbacks,
            "models": [{k: m.get(k) for k in ("ts", "version", "log_loss", "positives",
                                              "examples", "fallback")} for m in models],
            "psi": {f"{v}.{f}": cells for (v, f), cells in sorted(psi.items())},
            "dead_letters": errors, "late_events": lates, "inputs": inputs,
            "input_buckets": closed, "decisions": len(records)}


def render(data: dict[str, Any], title: str = "Bespoke drift dashboard",
           refresh_s: int | None = None) -> str:
    """The page (self-contained HTML) for ``collect``'s data."""
    from bokeh.embed import file_html
    from bokeh.layouts import column
    from bokeh.models import ColumnDataSource, DataRange1d, LinearColorMapper
    from bokeh.models.annotations import BoxAnnotation, ColorBar, Span
    from bokeh.models.ranges import FactorRange
    from bokeh.models.widgets import Div
    from bokeh.plotting import figure
    from bokeh.resources import INLINE

    xs = data["starts"]
    w = data["width"] * 0.9
    shared_x = DataRange1d()  # one time axis: zooming one plot zooms all

    def timeline(name: str, height: int = 220) -> Any:
        p = figure(title=name, x_axis_type="datetime", x_range=shared_x, height=height,
                   sizing_mode="stretch_width", tools="xpan,xwheel_zoom,reset,hover")
        for lo, hi, _ in data["fallbacks"]:
            p.add_layout(BoxAnnotation(left=lo, right=hi, fill_alpha=0.15,
                                       fill_color="#d62728"))
        for a in data["alerts"]:
            color = ("#2ca02c" if a["action"] == "recovered" else "#d62728"
                     if str(a.get("monitor", "")).endswith("-loss") else "#ff7f0e")
            p.add_layout(Span(location=a["ts"], dimension="height", line_width=2,
                              line_dash="dashed", line_color=color))
        return p

    def stacked(name: str, series: dict[str, list[int]]) -> Any:
        p = timeline(name)
        keys = list(series)
        if keys:
            src = ColumnDataSource({"x": xs, **series})
            p.vbar_stack(keys, x="x", width=w, source=src, legend_label=keys,
                         fill_color=list(PALETTE[:len(keys)]), line_color=None)
            p.legend.location = "top_left"
        return p

    ranker = stacked("Feeds by ranker (red band: fallback after a drift alert)",
                     data["ranker"])
    ctr = timeline("Share of served items acted on (attributed examples)")
    ctr.line(xs, [c if c is not None else float("nan") for c in data["ctr"]], line_width=2)
    loss = timeline("Learned ranker per version: prequential log-loss, share of positives")
    ms = data["models"]
    if ms:
        loss.line([m["ts"] for m in ms], [m["log_loss"] for m in ms], line_width=2,
                  legend_label="log-loss", color=PALETTE[0])
        loss.line([m["ts"] for m in ms], [m["positives"] for m in ms], line_width=2,
                  legend_label="positives", color=PALETTE[1])
        loss.legend.location = "top_left"
    kinds = stacked("Decisions by kind", data["kinds"])
    denials = stacked("Policy denials by rule (top 6)", data["denials"])
    errs = stacked("Dead letters and late events",
                   {"dead letters": data["dead_letters"], "late events": data["late_events"]})
    rate = stacked("Input events per input-monitor bucket (a minute by default)",
                   {"events": [e / n if n else 0 for e, n in zip(
                       data["inputs"], data["input_buckets"], strict=True)]})
    names = list(data["psi"])
    heat = figure(title="Feature drift: PSI per view and field (max per bucket)",
                  x_axis_type="datetime", x_range=shared_x,
                  y_range=FactorRange(factors=names or ["-"]),
                  height=max(200, 18 * len(names) + 80), sizing_mode="stretch_width",
                  tools="hover", tooltips=[("field", "@y"), ("PSI", "@psi")])
    if names:
        cells = [(x, n, v) for n in names for x, v in zip(xs, data["psi"][n], strict=True)
                 if v is not None]
        mapper = LinearColorMapper(palette="Viridis256", low=0,
                                   high=max(0.25, max((c[2] for c in cells), default=0)))
        heat.rect(x="x", y="y", width=data["width"],
                  height=1, source=ColumnDataSource({"x": [c[0] for c in cells],
                                                     "y": [c[1] for c in cells],
                                                     "psi": [c[2] for c in cells]}),
                  fill_color={"field": "psi", "transform": mapper}, line_color=None)
        heat.add_layout(ColorBar(color_mapper=mapper), "right")
    n_alerts = Counter(a["action"] for a in data["alerts"])
    summary = Div(text=(
        f"<h2>{title}</h2><p>{data['decisions']:,} decisions; {len(ms)} model versions; "
        f"drift alerts: {dict(n_alerts) or 'none'}; fallback periods: "
        f"{len(data['fallbacks'])}.</p>"), sizing_mode="stretch_width")
    page = file_html(column(summary, ranker, ctr, loss, kinds, denials, heat, errs, rate,
                            sizing_mode="stretch_width"), INLINE, title)
    if refresh_s:
        page = page.replace("<head>", f'<head><meta http-equiv="refresh" '
                                      f'content="{refresh_s}">', 1)
    return page


SHOWN = (ch.DECISION_RECORDS.name, ch.TRAINING_EXAMPLES.name, ch.DRIFT_ALERTS.name,
         ch.MODEL_CHANGES.name, ch.FEATURE_QUALITY.name, ch.DEAD_LETTERS.name,
         ch.LATE_EVENTS.name)  # the channels the page reads


def kafka_lines(settings: Settings, max_lines: int = 1_000_000) -> TopicReader:
    """A ``TopicReader`` over the shown channels' topics (``settings``: brokers, prefix,
    security), filled once."""
    from connectors.topic_reader import TopicReader

    reader = TopicReader(settings.kafka_bootstrap_servers or "",
                         {c: settings.topic(c) for c in SHOWN}, settings.kafka_security(),
                         max_lines=max_lines)
    reader.refresh(timeout_s=60.0)
    return reader


def write_html(out: Source, html_file: Path) -> None:
    html_file.parent.mkdir(parents=True, exist_ok=True)
    html_file.write_text(render(collect(out)), encoding="utf-8")


def serve(out: Source, port: int, host: str = "127.0.0.1") -> None:
    """Serve the page on ``host:port``, built on every request from the files, or from
    what the topics hold by then (``out`` a ``TopicReader``: new messages are read first)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    lock = threading.Lock()  # one refresh and collect at a time (the consumer is not shared)

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server name
            with lock:
                refresh = getattr(out, "refresh", None)
                if refresh is not None:
                    refresh()
                data = collect(out)
            body = render(data, refresh_s=10).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with ThreadingHTTPServer((host, port), Page) as httpd:
        print(f"dashboard on http://{host}:{httpd.server_address[1]}/ (Ctrl-C stops)",
              flush=True)
        httpd.serve_forever()
