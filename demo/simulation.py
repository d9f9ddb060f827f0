"""What demo traffic looks like: feature profiles of fraud, churn, credit and support-ticket models, and their drift. No Django.

Every random number of event i comes from a block seeded by (seed, i // BLOCK),
so a seed gives the same events whatever the batch size or rate; the drift
and the latency growth only transform those numbers. Used by `manage.py simulate_traffic`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

BLOCK = 10_000  # events per block of random numbers
LABEL_SHARE = 0.3  # share of successful events whose ground-truth label arrives, later, through the labels API
LABEL_DELAY_SPREAD = 6.0  # a label arrives between the shortest delay and this many times it after its event
ERROR_SHARE = 0.012
SLOW_SHARE = 0.03  # a slow tail: GC pauses, cold caches


# --- what the traffic looks like --------------------------------------------------------------------


@dataclass(frozen=True)
class Numeric:
    """A number made from a standard normal draw `z` and the drift size `s` (0 before the drift)."""

    name: str
    make: Callable[[np.ndarray, float], np.ndarray]
    digits: int = 2  # 0: a whole number

    def values(self, z: np.ndarray, s: float) -> np.ndarray:
        out = np.round(self.make(z, s), self.digits)
        return out.astype(np.int64) if self.digits == 0 else out


@dataclass(frozen=True)
class Categorical:
    """A category picked by a uniform draw: the mix moves from `before` towards `after` (size 1), new categories allowed."""

    name: str
    before: dict[str, float]
    after: dict[str, float]

    def mix(self, s: float) -> tuple[list[str], np.ndarray]:
        names = list(dict.fromkeys([*self.before, *self.after]))
        before = np.array([self.before.get(c, 0.0) for c in names])
        after = np.array([self.after.get(c, 0.0) for c in names])
        p = np.clip((1 - s) * before / before.sum() + s * after / after.sum(), 0, None)  # s > 1 extrapolates
        return names, p / p.sum()

    def values(self, u: np.ndarray, s: float) -> np.ndarray:
        names, p = self.mix(s)
        index = np.minimum(np.searchsorted(np.cumsum(p), u, side="right"), len(names) - 1)
        return np.array(names, dtype=object)[index]


@dataclass(frozen=True)
class Profile:
    """The features of one kind of model, how its score depends on them, and how it is served."""

    name: str
    features: tuple[Numeric | Categorical, ...]
    logit: Callable[[dict[str, np.ndarray]], np.ndarray]  # the model's score before noise
    default_drift: tuple[str, ...]
    concept_shift: float  # after the drift the true rate moves this much (logit) beyond what the model sees
    latency_ms: float  # median latency
    unit_prefix: str
    units: int


def _risk(values: np.ndarray, table: dict[str, float]) -> np.ndarray:
    return np.fromiter((table.get(v, 0.0) for v in values), dtype=float, count=len(values))


MERCHANT_RISK = {
    "grocery": -0.6, "restaurants": -0.3, "fuel": 0.0, "online_retail": 0.5, "travel": 0.4, "electronics": 0.8,
    "entertainment": 0.1, "health": -0.4, "utilities": -0.8, "gift_cards": 1.4, "crypto": 1.6,
}
CARD_COUNTRY_RISK = {"US": 0.0, "CA": 0.2, "GB": 0.3, "DE": 0.3, "FR": 0.3, "MX": 0.6, "IN": 0.6, "BR": 0.8, "NG": 1.2, "RO": 1.0}
CHANNEL_RISK = {"pos": -0.3, "online": 0.4, "atm": 0.2}


def _fraud_logit(f: dict[str, np.ndarray]) -> np.ndarray:
    amount = (np.log(f["amount"]) - 3.7) / 0.9
    distance = (np.log1p(f["distance_from_home_km"]) - 1.9) / 1.0
    age = (np.log(f["account_age_days"]) - 6.2) / 0.9
    velocity = (f["num_tx_24h"] - 2.0) / 2.0
    night = (f["hour_of_day"] < 6).astype(float)
    risk = _risk(f["merchant_category"], MERCHANT_RISK) + _risk(f["country"], CARD_COUNTRY_RISK) + _risk(f["channel"], CHANNEL_RISK)
    return -4.4 + 0.9 * amount + 0.45 * distance - 0.5 * age + 0.3 * velocity + 0.7 * night + risk


FRAUD = Profile(
    name="fraud",
    features=(
        Numeric("amount", lambda z, s: np.maximum(np.exp(3.7 + 0.8 * s + 0.9 * (1 + 0.15 * s) * z), 0.5)),
        Categorical(
            "merchant_category",
            {"grocery": 22, "restaurants": 16, "fuel": 10, "online_retail": 18, "travel": 5, "electronics": 6,
             "entertainment": 8, "health": 7, "utilities": 8},
            {"grocery": 12, "restaurants": 10, "fuel": 6, "online_retail": 26, "travel": 7, "electronics": 16,
             "entertainment": 6, "health": 4, "utilities": 5, "gift_cards": 5, "crypto": 3},
        ),
        Categorical(
            "country",
            {"US": 80, "CA": 5, "GB": 4, "MX": 3, "DE": 2, "FR": 2, "IN": 2, "BR": 1, "NG": 1},
            {"US": 58, "CA": 5, "GB": 5, "MX": 7, "DE": 2, "FR": 2, "IN": 4, "BR": 7, "NG": 6, "RO": 4},
        ),
        Categorical("channel", {"pos": 55, "online": 38, "atm": 7}, {"pos": 38, "online": 54, "atm": 8}),
        # The cardholder's local hour (customers span time zones), so it does not follow the event timestamp.
        Numeric("hour_of_day", lambda z, s: np.floor((14.5 - 5.0 * s + 4.5 * z) % 24), digits=0),
        Numeric("account_age_days", lambda z, s: np.clip(np.exp(6.2 - 0.8 * s + 0.9 * z), 1, 7300), digits=0),
        Numeric("num_tx_24h", lambda z, s: np.floor(np.exp(0.9 + 0.5 * s + 0.65 * z)), digits=0),
        Numeric("distance_from_home_km", lambda z, s: np.exp(1.8 + 1.0 * s + 1.1 * z), digits=1),
    ),
    logit=_fraud_logit,
    default_drift=("amount", "merchant_category"),
    # After the drift, fraud moves with the new merchant mix faster than the model's inputs show (card testing through
    # gift cards and crypto): the true fraud rate of drifted requests goes from about 4 % to about 30 % while the scores
    # rise far less, so accuracy falls from about 0.96 to about 0.70 on them. Their late labels pull a day's accuracy
    # more than 5 % under the registered baseline, which the performance page shows.
    concept_shift=2.0,
    latency_ms=28.0,
    unit_prefix="card-",
    units=50_000,
)

PLAN_RISK = {"basic": 0.3, "standard": 0.0, "premium": -0.4, "family": -0.6}
PAYMENT_RISK = {"card": 0.0, "paypal": 0.1, "bank_transfer": -0.3, "invoice": 0.5}


def _churn_logit(f: dict[str, np.ndarray]) -> np.ndarray:
    tenure = (np.log(f["tenure_months"]) - 3.0) / 0.9
    charges = (np.log(np.maximum(f["monthly_charges"] - 15, 1)) - 3.7) / 0.45
    login = (np.log1p(f["days_since_last_login"]) - 1.2) / 0.9
    sessions = (np.log1p(f["sessions_7d"]) - 2.0) / 0.7
    tickets = np.minimum(f["support_tickets_30d"], 5) * 0.35
    risk = _risk(f["plan"], PLAN_RISK) + _risk(f["payment_method"], PAYMENT_RISK)
    return -2.0 - 0.7 * tenure + 0.5 * charges + 0.5 * login - 0.4 * sessions + tickets + risk


CHURN = Profile(
    name="churn",
    features=(
        Numeric("tenure_months", lambda z, s: np.clip(np.floor(np.exp(3.0 - 0.6 * s + 0.9 * z)), 1, 120), digits=0),
        Numeric("monthly_charges", lambda z, s: 15 + np.exp(3.7 + 0.35 * s + 0.45 * z)),
        Categorical("plan", {"basic": 45, "standard": 35, "premium": 15, "family": 5}, {"basic": 74, "standard": 17, "premium": 5, "family": 4}),
        Categorical("payment_method", {"card": 55, "paypal": 20, "bank_transfer": 15, "invoice": 10},
                    {"card": 40, "paypal": 20, "bank_transfer": 10, "invoice": 30}),
        Categorical("country", {"US": 50, "GB": 15, "DE": 12, "FR": 10, "ES": 8, "IT": 5},
                    {"US": 35, "GB": 12, "DE": 12, "FR": 10, "ES": 10, "IT": 6, "PL": 15}),
        Numeric("support_tickets_30d", lambda z, s: np.floor(np.exp(-0.2 + 0.6 * s + 0.8 * z)), digits=0),
        Numeric("days_since_last_login", lambda z, s: np.floor(np.exp(1.0 + 0.7 * s + 1.0 * z)), digits=0),
        Numeric("sessions_7d", lambda z, s: np.floor(np.exp(2.0 - 0.5 * s + 0.7 * z)), digits=0),
    ),
    logit=_churn_logit,
    default_drift=("monthly_charges", "plan"),
    concept_shift=0.5,
    latency_ms=45.0,
    unit_prefix="cust-",
    units=20_000,
)

EMPLOYMENT_RISK = {"salaried": -0.2, "self_employed": 0.3, "contract": 0.4, "unemployed": 1.3, "retired": 0.0}
HOME_RISK = {"mortgage": -0.2, "rent": 0.2, "own": -0.1}


def _credit_logit(f: dict[str, np.ndarray]) -> np.ndarray:
    income = (np.log(f["annual_income"]) - 10.9) / 0.5
    loan = (np.log(f["loan_amount"]) - 9.4) / 0.7
    dti = (f["debt_to_income"] - 0.28) / 0.1
    history = (np.log1p(f["credit_history_years"]) - 2.4) / 0.5
    risk = _risk(f["employment_type"], EMPLOYMENT_RISK) + _risk(f["home_ownership"], HOME_RISK)
    return -3.0 - 0.6 * income + 0.5 * loan + 0.5 * dti - 0.4 * history + 0.1 * f["open_credit_lines"] + risk


CREDIT = Profile(
    name="credit",
    features=(
        Numeric("annual_income", lambda z, s: np.exp(10.9 - 0.35 * s + 0.5 * z), digits=0),
        Numeric("loan_amount", lambda z, s: np.exp(9.4 + 0.4 * s + 0.7 * z), digits=0),
        Numeric("debt_to_income", lambda z, s: np.clip(0.28 + 0.08 * s + 0.1 * z, 0, 1.5), digits=3),
        Numeric("credit_history_years", lambda z, s: np.clip(np.exp(2.3 - 0.5 * s + 0.6 * z), 0, 60), digits=1),
        Numeric("open_credit_lines", lambda z, s: np.floor(np.exp(1.4 + 0.3 * s + 0.5 * z)), digits=0),
        Categorical("employment_type", {"salaried": 68, "self_employed": 14, "contract": 12, "unemployed": 3, "retired": 3},
                    {"salaried": 40, "self_employed": 18, "contract": 24, "unemployed": 13, "retired": 5}),
        Categorical("home_ownership", {"mortgage": 42, "rent": 40, "own": 18}, {"mortgage": 32, "rent": 55, "own": 13}),
        Categorical("purpose", {"debt_consolidation": 38, "home_improvement": 18, "car": 16, "medical": 8, "education": 10, "other": 10},
                    {"debt_consolidation": 30, "home_improvement": 10, "car": 12, "medical": 18, "education": 12, "other": 18}),
    ),
    logit=_credit_logit,
    default_drift=("annual_income", "employment_type"),
    concept_shift=0.6,
    latency_ms=60.0,
    unit_prefix="applicant-",
    units=30_000,
)

TICKET_CHANNEL_RISK = {"email": 0.0, "chat": -0.2, "phone": 0.3, "social": 0.6}
TIER_RISK = {"free": 0.3, "pro": 0.0, "enterprise": -0.3}


def _support_logit(f: dict[str, np.ndarray]) -> np.ndarray:
    length = (np.log(f["message_chars"]) - 5.8) / 0.8
    shouting = np.minimum(f["exclamation_marks"], 6) * 0.3
    repeat = np.minimum(f["tickets_90d"], 5) * 0.25
    risk = _risk(f["channel"], TICKET_CHANNEL_RISK) + _risk(f["customer_tier"], TIER_RISK)
    return -1.2 + 0.35 * length + shouting + repeat + risk


# Support tickets scored for negative sentiment (a sentiment classifier routing angry customers first).
SUPPORT = Profile(
    name="support",
    features=(
        Numeric("message_chars", lambda z, s: np.clip(np.exp(5.8 + 0.3 * s + 0.8 * z), 5, 20_000), digits=0),
        Numeric("exclamation_marks", lambda z, s: np.floor(np.exp(-0.5 + 0.6 * s + 0.9 * z)), digits=0),
        Numeric("tickets_90d", lambda z, s: np.floor(np.exp(0.2 + 0.4 * s + 0.8 * z)), digits=0),
        Categorical("channel", {"email": 45, "chat": 35, "phone": 15, "social": 5}, {"email": 30, "chat": 35, "phone": 15, "social": 20}),
        Categorical("language", {"en": 70, "de": 10, "fr": 8, "es": 8, "pt": 4}, {"en": 55, "de": 10, "fr": 8, "es": 15, "pt": 12}),
        Categorical("customer_tier", {"free": 60, "pro": 30, "enterprise": 10}, {"free": 70, "pro": 23, "enterprise": 7}),
    ),
    logit=_support_logit,
    default_drift=("message_chars", "channel"),
    concept_shift=0.4,
    latency_ms=35.0,
    unit_prefix="customer-",
    units=30_000,
)

PROFILES = {p.name: p for p in (FRAUD, CHURN, CREDIT, SUPPORT)}


def profile_for(model: str) -> str:
    name = model.lower()
    if "churn" in name:
        return "churn"
    if "credit" in name or "loan" in name:
        return "credit"
    if "sentiment" in name or "ticket" in name or "support" in name:
        return "support"
    return "fraud"


class BlockDraws:
    """The random numbers of events [start, stop): block b of BLOCK events comes from the generator seeded (seed, stream, b).

    Subclasses say which arrays a block holds (`_draw`); adding one at the end keeps the earlier ones unchanged.
    """

    def __init__(self, seed: int, stream: int):
        self.seed, self.stream = seed, stream
        self._cached: tuple[int, dict[str, np.ndarray]] | None = None

    def _draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _block(self, block: int) -> dict[str, np.ndarray]:
        if self._cached and self._cached[0] == block:
            return self._cached[1]
        out = self._draw(np.random.default_rng([self.seed, self.stream, block]))
        self._cached = (block, out)
        return out

    def take(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """The random numbers of the given indices (any order, repeats allowed): row i of block i // BLOCK."""
        index = np.asarray(index, dtype=np.int64)
        blocks = index // BLOCK
        out: dict[str, np.ndarray] = {}
        for block in np.unique(blocks):
            here = blocks == block
            for key, values in self._block(int(block)).items():
                out.setdefault(key, np.empty(len(index), dtype=values.dtype))[here] = values[index[here] - block * BLOCK]
        return out

    def rows(self, start: int, stop: int) -> dict[str, np.ndarray]:
        parts: dict[str, list[np.ndarray]] = {}
        for block in range(start // BLOCK, (stop - 1) // BLOCK + 1):
            lo, hi = max(start, block * BLOCK) - block * BLOCK, min(stop, (block + 1) * BLOCK) - block * BLOCK
            for key, values in self._block(block).items():
                parts.setdefault(key, []).append(values[lo:hi])
        return {key: np.concatenate(values) for key, values in parts.items()}


class Draws(BlockDraws):
    """The random numbers of a model's events: one per feature, then noise, latency, errors, labels, unit, time jitter and
    how late the label comes."""

    def __init__(self, profile: Profile, seed: int, stream: int):
        super().__init__(seed, stream)
        self.profile = profile

    def _draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        out = {spec.name: rng.standard_normal(BLOCK) if isinstance(spec, Numeric) else rng.random(BLOCK) for spec in self.profile.features}
        for key in ("noise", "latency"):
            out[key] = rng.standard_normal(BLOCK)
        for key in ("slow", "error", "error_kind", "error_latency", "labelled", "label", "unit", "jitter", "label_delay"):
            out[key] = rng.random(BLOCK)
        return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def unit_numbers(units: int, u: np.ndarray) -> np.ndarray:
    """The unit (user, card, customer...) of each event from a uniform draw: a few heavy users, a long tail."""
    return np.floor(units * u**2.5).astype(np.int64)


def label_delays(u: np.ndarray, shortest: float) -> np.ndarray:
    """Seconds from an event to its label, from a uniform draw: d = shortest * (1 + (SPREAD - 1) * u^2), so between
    `shortest` and SPREAD times it, most labels early and a long tail (a review queue works the easy cases first)."""
    return shortest * (1 + (LABEL_DELAY_SPREAD - 1) * np.asarray(u, float) ** 2)


def after_point(index: np.ndarray, ts: np.ndarray, point_index: int | None, point_ts: float | None) -> np.ndarray:
    """Which events come at or after a change point given as an event index or a time (neither: none)."""
    if point_index is not None:
        return index >= point_index
    if point_ts is not None:
        return ts >= point_ts
    return np.zeros(len(index), bool)


def growth(ts: np.ndarray, begin: float, end: float, final: float, initial: float = 1.0) -> np.ndarray:
    """A factor moving linearly in time, g(t) = initial + (final - initial) * (t - begin) / (end - begin):
    `initial` at `begin`, `final` at `end`, held at those values outside [begin, end]."""
    return initial + (final - initial) * np.clip((np.asarray(ts, float) - begin) / max(end - begin, 1e-9), 0.0, 1.0)


def simulate(profile: Profile, draws: dict[str, np.ndarray], drifted: np.ndarray, size: float, drift_features: set[str],
             latency_factor: np.ndarray | float = 1.0) -> dict:
    """Features, prediction, label, latency, error and unit of each row of `draws`; `drifted` rows get the shifted distributions.

    `latency_factor` (one per row, or one for all) multiplies the latency of the successful requests: a model getting slower.
    Failed requests keep theirs (a timeout is the client's setting, a fast failure stays fast).
    """
    features = {}
    for spec in profile.features:
        values = spec.values(draws[spec.name], 0.0)
        if spec.name in drift_features and size and drifted.any():
            values[drifted] = spec.values(draws[spec.name][drifted], size)
        features[spec.name] = values
    logit = profile.logit({k: v if v.dtype == object else v.astype(float) for k, v in features.items()})
    logit = logit + 0.6 * draws["noise"]
    truth = logit + profile.concept_shift * size * drifted * bool(drift_features)
    error = draws["error"] < ERROR_SHARE
    latency = profile.latency_ms * np.exp(0.45 * draws["latency"]) * np.where(draws["slow"] < SLOW_SHARE, 4.0, 1.0)
    if not np.all(np.asarray(latency_factor) == 1.0):  # without growth, exactly the numbers of before
        latency = latency * latency_factor
    # A failed request either timed out (seconds) or failed fast (a few milliseconds).
    failed = np.where(draws["error_kind"] < 0.4, 2000 + 3000 * draws["error_latency"], 3 + 17 * draws["error_latency"])
    return {
        "features": features,
        "prediction": np.round(_sigmoid(logit), 4),
        "label": (draws["label"] < _sigmoid(truth)).astype(np.int64),
        "labelled": ~error & (draws["labelled"] < LABEL_SHARE),
        "error": error,
        "latency_ms": np.round(np.where(error, failed, latency), 1),
        "unit": unit_numbers(profile.units, draws["unit"]),
    }
