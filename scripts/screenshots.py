"""Take the README screenshots from a running demo site: `python scripts/screenshots.py http://127.0.0.1:8000 [NAME.png ...]`
(only the named ones when some are given)."""

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
PAGES = {
    "home.png": "/",
    "models.png": "/models/",
    "model.png": "/models/fraud-detector/",
    "version.png": "/models/fraud-detector/versions/12/",
    "compare.png": "/models/fraud-detector/compare/?v=3&v=6&v=9",
    "audit.png": "/audit/",
    "prompts.png": "/prompts/",
    "prompt.png": "/prompts/summarize/",
    "prompt_version.png": "/prompts/summarize/versions/4/?against=2",
    "alerts.png": "/monitoring/alerts/",
    "operations.png": "/monitoring/operations/model/fraud-detector/?range=24h",
    "operations_prompt.png": "/monitoring/operations/prompt/summarize/?range=24h",
    "costs.png": "/monitoring/costs/?range=24h",
    "quality.png": "/monitoring/quality/summarize/?range=24h",
    "gates.png": "/models/loan-approval/versions/1/",
    "gates_pass.png": "/models/loan-approval/versions/2/",
    "experiments.png": "/experiments/",
    "experiment.png": "/experiments/churn-v7-offers/",
    "experiment_prompt.png": "/experiments/summarize-v3-exec/",
    "rollouts.png": "/rollouts/",
    "rollout.png": "/rollouts/2/",  # product-recommender v5, rolled back by its error rate (demo/seed_rollouts.py)
    "runs.png": "/runs/1/",  # fraud-detector's training runs (demo/seed.py)
}
# Made by clicking, not by address (run ids are random): the first two runs of fraud-detector's group, compared.
CLICKED = {"run_compare.png"}

FULL_PAGE = {"rollout.png"}  # its charts and decisions are below the fold


def main(base: str, only: list[str]) -> None:
    unknown = sorted(set(only) - set(PAGES) - CLICKED - {"drift_report.png"})
    if unknown:
        raise SystemExit(f"No screenshot named {', '.join(unknown)}; known: {', '.join([*PAGES, *CLICKED, 'drift_report.png'])}")
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(base + "/accounts/login/")
        page.fill("input[name=username]", "bob")
        page.fill("input[name=password]", "bob")
        page.click("button[type=submit]")
        for name, path in PAGES.items():
            if only and name not in only:
                continue
            page.goto(base + path)
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(400)
            page.screenshot(path=str(OUT / name), full_page=name in FULL_PAGE)
            print("wrote", OUT / name)
        if not only or "run_compare.png" in only:
            page.goto(base + "/runs/1/")
            boxes = page.locator("input[type=checkbox][name=run]")
            boxes.nth(0).check()
            boxes.nth(1).check()
            page.get_by_role("button", name="Compare selected").click()
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(400)
            page.screenshot(path=str(OUT / "run_compare.png"), full_page=False)
            print("wrote", OUT / "run_compare.png")
        # The newest drift report of the demo model: the first report link of its monitoring page.
        if only and "drift_report.png" not in only:
            browser.close()
            return
        page.goto(base + "/monitoring/models/fraud-detector/versions/6/")
        link = page.locator("a[href^='/monitoring/reports/']").first
        if link.count():
            page.goto(base + link.get_attribute("href"))
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(400)
            page.screenshot(path=str(OUT / "drift_report.png"), full_page=False)
            print("wrote", OUT / "drift_report.png")
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000", sys.argv[2:])
