"""HTML pages of experiments: the list, one experiment with its results (`experiments`), the design form
(`design`), and canary rollouts (`rollouts`). Pages read through selectors; every button calls one service through
`mlops_site.pages.call_and_redirect`."""
