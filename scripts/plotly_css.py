"""Write the style sheets plotly.js would otherwise inject as inline <style> elements (which the Content Security
Policy refuses): static/css/plotly.css (its global rules, loaded by a <link id="plotly.js-style-global"
class="no-inline-styles">, which tells plotly.js not to inject them) and static/css/plotly-maps.css (the map library's
rules, loaded by a <link> with the id plotly.js checks before injecting them). Run after upgrading plotly:

    .venv/bin/python scripts/plotly_css.py

and put the printed id in templates/_plotly.html. tests/test_browser_csp.py fails while they are out of date.
"""

import re
from pathlib import Path

import plotly
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
PLOTLY = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]


def main() -> None:
    source = PLOTLY.read_text()
    version = re.search(r"plotly\.js v([\d.]+)", source[:200]).group(1)
    header = "/* Written by scripts/plotly_css.py from plotly.js v{}: {} */\n"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_content("<html><head></head><body><div id='chart'></div></body></html>")
        page.add_script_tag(content=source)
        page.evaluate("Plotly.newPlot('chart', [{x: [1, 2], y: [3, 4]}], {})")
        styles = page.evaluate("Array.from(document.querySelectorAll('head style')).map(s => [s.id, s.sheet.cssRules.length])")
        # plotly.js inserts each global rule at the top, so the sheet lists them last first.
        rules = page.evaluate("Array.from(document.getElementById('plotly.js-style-global').sheet.cssRules).map(r => r.cssText)")
        maps = [(i, page.evaluate(f"document.getElementById({i!r}).textContent")) for i, _ in styles if i != "plotly.js-style-global"]
        browser.close()
    (ROOT / "static/css/plotly.css").write_text(header.format(version, "its global rules") + "\n".join(reversed(rules)) + "\n")
    for element_id, css in maps:
        (ROOT / "static/css/plotly-maps.css").write_text(header.format(version, "the map library's rules") + css + "\n")
        print(f"plotly-maps.css: the <link> id is {element_id}")


if __name__ == "__main__":
    main()
