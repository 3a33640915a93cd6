"""Headless Chromium (Debian's ``chromium``) for the drift dashboard: what each plot drew, and
a screenshot.

``plots_drawn(page)`` loads a copy of the page with a probe appended; once Bokeh has laid out
every plot, the probe paints each plot twice into an off-screen canvas (``PlotView.export``),
once as is and once with its data glyphs hidden (legends hidden in both), and counts the
pixels that differ: the pixels the data drew. The answer comes back through ``--dump-dom``.
No network: the page is self-contained and Chromium's background connections are off.

Example (needs ``chromium`` on PATH; ``scripts/install-server-deps.sh`` installs it)::

    python -m scripts.chromium out/dashboard.html --png out/dashboard.png
"""

from __future__ import annotations

import argparse
import html as html_lib
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars", "--mute-audio"]

PROBE = """
<script>
(function () {
  function pixels(view) {
    const layer = view.export("png", false);
    const c = layer.canvas;
    return c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  }
  function answer(value) {
    const pre = document.createElement("pre");
    pre.id = "bespoke-probe";
    pre.textContent = JSON.stringify(value);
    document.body.appendChild(pre);
  }
  let tries = 0;
  function probe() {
    try { measure(); } catch (e) { answer({error: String(e), stack: String(e.stack)}); }
  }
  function measure() {
    tries += 1;
    if (typeof Bokeh === "undefined") {
      return tries < 200 ? setTimeout(probe, 100) : answer({error: "no Bokeh"});
    }
    const views = [...Bokeh.index.all_views()];
    const plots = views.filter(v => v.model.type === "Figure" || v.model.type === "Plot");
    if (plots.length === 0 || !plots.every(v => v.has_finished())) {
      return tries < 200 ? setTimeout(probe, 100) : answer({error: "not rendered"});
    }
    const out = plots.map(v => {
      const glyphs = v.model.renderers.filter(r => r.type === "GlyphRenderer");
      const rows = glyphs.reduce((n, r) => n + (r.data_source.get_length() || 0), 0);
      // legends grey out hidden glyphs' entries: keep them out of both paintings
      const m = v.model;
      const legends = [...m.center, ...m.left, ...m.right, ...m.above, ...m.below]
        .filter(r => r.type === "Legend" && r.visible);
      legends.forEach(r => { r.visible = false; });
      const shown = pixels(v);
      glyphs.forEach(r => { r.visible = false; });
      const bare = pixels(v);
      glyphs.forEach(r => { r.visible = true; });
      legends.forEach(r => { r.visible = true; });
      let drawn = 0;
      for (let i = 0; i < shown.length; i += 4) {
        if (shown[i] !== bare[i] || shown[i + 1] !== bare[i + 1] ||
            shown[i + 2] !== bare[i + 2]) { drawn += 1; }
      }
      return {title: v.model.title ? v.model.title.text : "", glyphs: glyphs.length,
              rows: rows, drawn_px: drawn, width: v.bbox.width, height: v.bbox.height};
    });
    answer(out);
  }
  window.addEventListener("load", () => setTimeout(probe, 100));
})();
</script>
"""


def executable() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(args: list[str], timeout_s: float) -> str:
    exe = executable()
    if exe is None:
        raise FileNotFoundError("chromium is not installed (scripts/install-server-deps.sh)")
    with tempfile.TemporaryDirectory(prefix="bespoke-chromium-") as profile:
        got = subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args],
                             capture_output=True, text=True, timeout=timeout_s, check=False)
    if got.returncode != 0:
        raise RuntimeError(f"chromium exited {got.returncode}: {got.stderr[-2000:]}")
    return got.stdout


def plots_drawn(page: Path, timeout_s: float = 120.0) -> list[dict[str, Any]]:
    """Per plot of a Bokeh page: title, glyph count, data rows and pixels its data drew."""
    html = page.read_text(encoding="utf-8")
    at = html.rfind("</body>")
    probed = html[:at] + PROBE + html[at:] if at >= 0 else html + PROBE
    with tempfile.TemporaryDirectory(prefix="bespoke-probe-") as d:
        copy = Path(d) / page.name
        copy.write_text(probed, encoding="utf-8")
        dom = _run(["--virtual-time-budget=30000", "--window-size=1400,2400", "--dump-dom",
                    copy.as_uri()], timeout_s)
    found = re.search(r'<pre id="bespoke-probe">(.*?)</pre>', dom, re.S)
    if found is None:
        raise RuntimeError("the probe gave no answer (Bokeh did not render?)")
    got = json.loads(html_lib.unescape(found.group(1)))
    if isinstance(got, dict):
        raise RuntimeError(f"the probe failed: {got}")
    return got


def screenshot(page: Path, png: Path, width: int = 1400, height: int = 1950,
               timeout_s: float = 120.0) -> Path:
    """A PNG of the page as Chromium renders it (after its scripts ran)."""
    png.parent.mkdir(parents=True, exist_ok=True)
    _run(["--virtual-time-budget=30000", f"--window-size={width},{height}",
          f"--screenshot={png.resolve()}", page.resolve().as_uri()], timeout_s)
    if not png.exists():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return png


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("page", type=Path)
    ap.add_argument("--png", type=Path, help="also write a screenshot here")
    ap.add_argument("--size", default="1400,1950", help="window WIDTH,HEIGHT for --png")
    a = ap.parse_args()
    for p in plots_drawn(a.page):
        print(f"{p['drawn_px']:>8} px  {p['rows']:>6} rows  {p['title']}")
    if a.png:
        w, h = (int(x) for x in a.size.split(","))
        print(f"screenshot: {screenshot(a.page, a.png, w, h)}")


if __name__ == "__main__":
    main()
