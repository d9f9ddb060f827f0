"""The demo: data and traffic that make a fresh site look like one in use. A tool, not part of the product.

It writes only through the product's public services and API, as a user of the
site would, and the apps never import it:

- `seed.py`: demo users and a 90-day registry history (models, versions,
  promotions, a rollback, prompts, a gated model), `manage.py seed_demo`;
  `seed_experiments.py`: its four A/B tests, run on the same simulated clock.
- `simulation.py`, `simulation_llm.py`, `simulation_ab.py`: what model and LLM
  traffic looks like and what the units of an A/B test convert to (numpy only,
  seeded); `streams.py`: the batches a run sends, each event from the version
  its unit's experiment assigned, and their ground truth, which arrives later
  on its own (late labels, as real models get them); `traffic.py`: the API client and the loop that
  posts them to `/api/v1/events` (and outcomes to `/api/v1/outcomes`), shared by
  `manage.py simulate_traffic` and `manage.py simulate_llm_traffic`.

`make run` (scripts/run.sh) calls `seed_demo` on every start (it adds nothing
once models exist) and, on the first start only, a day of fraud-detector
traffic that drifts and slows down, a day of summarize-prompt requests whose
answers get longer under a daily budget, then a slow live fraud stream that
serves any A/B test of fraud-detector started while it runs.
"""
