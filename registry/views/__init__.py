"""HTML pages of the registry, one module per concept: models and their promotions (`models`),
prompts (`prompts`), quality gates and their evidence (`gates`). Pages read through selectors,
and every button calls one service through `mlops_site.pages.call_and_redirect`."""
