"""HTML pages of experiments: the list, one experiment with its results (`experiments`) and the design form
(`design`). Pages read through selectors; every button calls one service through
`mlops_site.pages.call_and_redirect`."""
