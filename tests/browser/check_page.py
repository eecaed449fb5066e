#!/usr/bin/env python3
"""Opens a jobherd page (JOBHERD_HTML_FILE) in real headless Chromium through WebDriver and
checks what a person would see, as tests/page.rs asks:

  check_page.py --url URL [--failed NAME] [--screenshot PNG] [--full-screenshot PNG]
                [--top-screenshot PNG]

- the browser's log has no Content-Security-Policy violation and no error at all (the page is
  served with Jenkins' default CSP by the caller);
- every bar of the timeline (`#timeline rect.bar`) has the place and the width its times
  (`data-from`, `data-to`, in milliseconds) give it on the axis (`data-span`, `data-plot-x`,
  `data-plot-width` on the chart), within a pixel;
- with --failed, that child's row and its bars are in the first screen, without scrolling.

Prints one JSON object (what it measured); exits 1 naming every problem. Chromium and its
driver are Debian's (/usr/bin/chromium, /usr/bin/chromedriver); the network is not used.
"""

import argparse
import base64
import json
import os
import sys
import tempfile

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

WIDTH, HEIGHT = 1280, 900
TOLERANCE = 1.0  # pixels


def driver(profile):
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for arg in [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
        f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}",
    ]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(options=options, service=service)


def number(element, name):
    value = element.get_dom_attribute(name)
    if value is None:
        raise AssertionError(f"{element.tag_name} has no {name}")
    return float(value)


def check_log(d, problems):
    """Every message of the browser's log is a problem: the page has no script to log."""
    entries = d.get_log("browser")
    for e in entries:
        problems.append(f"browser log ({e.get('level')}): {e.get('message')}")
    return len(entries)


def check_bars(d, problems):
    chart = d.find_element(By.ID, "timeline")
    span = number(chart, "data-span")
    plot_x = number(chart, "data-plot-x")
    plot_w = number(chart, "data-plot-width")
    origin = chart.rect
    bars = chart.find_elements(By.CSS_SELECTOR, "rect.bar")
    worst = 0.0
    for bar in bars:
        start, end = number(bar, "data-from"), number(bar, "data-to")
        want_x = origin["x"] + plot_x + start / span * plot_w
        want_w = max(1.0, (end - start) / span * plot_w)
        got = bar.rect
        off = max(abs(got["x"] - want_x), abs(got["width"] - want_w))
        worst = max(worst, off)
        if off > TOLERANCE:
            child = bar.find_element(By.XPATH, "..").get_dom_attribute("data-child")
            problems.append(
                f"bar of {child} from {start:.0f} ms to {end:.0f} ms: at x={got['x']:.1f} "
                f"width={got['width']:.1f}, its times give x={want_x:.1f} width={want_w:.1f}")
    if not bars:
        problems.append("the timeline has no bars")
    return {"bars": len(bars), "worst_offset_px": round(worst, 3), "span_ms": span}


def check_visible(d, name, problems):
    """The child's row, and each of its bars, inside the first screen."""
    viewport = d.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssVisualViewport"]
    height, width = viewport["clientHeight"], viewport["clientWidth"]
    try:
        row = d.find_element(By.ID, f"t-{name}")
    except WebDriverException:
        problems.append(f"no timeline row for the failed child {name}")
        return {}
    shapes = [row.rect] + [b.rect for b in row.find_elements(By.CSS_SELECTOR, "rect.bar")]
    if len(shapes) < 2:
        problems.append(f"the failed child {name} has no bars")
    for r in shapes:
        if r["y"] < 0 or r["y"] + r["height"] > height or r["x"] + r["width"] > width:
            problems.append(
                f"the failed child {name} is not in the first screen ({width}x{height}): "
                f"a shape at x={r['x']:.0f} y={r['y']:.0f} {r['width']:.0f}x{r['height']:.0f}")
    return {"viewport": [width, height], "row_y": round(shapes[0]["y"], 1)}


def full_screenshot(d, path, top=False):
    """The whole page, or with top=True down to the end of its plan (or of its timeline)."""
    metrics = d.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    height = metrics["height"]
    if top:
        last = (d.find_elements(By.ID, "plan") or d.find_elements(By.ID, "timeline"))[-1].rect
        height = min(height, last["y"] + last["height"] + 12)
    shot = d.execute_cdp_cmd("Page.captureScreenshot", {
        "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": metrics["width"], "height": height, "scale": 1},
    })
    with open(path, "wb") as f:
        f.write(base64.b64decode(shot["data"]))


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--url", required=True)
    args.add_argument("--failed")
    args.add_argument("--screenshot")
    args.add_argument("--full-screenshot")
    args.add_argument("--top-screenshot")
    a = args.parse_args()
    problems, found = [], {}
    with tempfile.TemporaryDirectory(prefix="jobherd-chromium-") as profile:
        d = driver(profile)
        try:
            d.get(a.url)
            found["title"] = d.title
            found.update(check_bars(d, problems))
            if a.failed:
                found.update(check_visible(d, a.failed, problems))
            if a.screenshot:
                d.save_screenshot(a.screenshot)
            if a.full_screenshot:
                full_screenshot(d, a.full_screenshot)
            if a.top_screenshot:
                full_screenshot(d, a.top_screenshot, top=True)
            found["log_entries"] = check_log(d, problems)
        finally:
            d.quit()
    found["problems"] = problems
    print(json.dumps(found))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
