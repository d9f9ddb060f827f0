"""HTML pages of monitoring, one module per concept: drift (overview, a version's monitoring page, a drift report),
alerts, operations (operations and GenAI quality, and the time range picker), performance (a version's labelled windows),
costs (spend, budgets, prices).
Pages read through selectors, and every button calls one service through `mlops_site.pages.call_and_redirect`."""
