"""The statistics of ipclab's reports, in one place: every figure is the
median of its repetitions with a distribution-free 95% confidence interval
(order statistics), a figure is stable when that interval is narrow and the
run was not disturbed, and two runs are compared with the Mann-Whitney U test
over their repetitions (as Google Benchmark's tools/compare.py does).

Why order statistics and not a bootstrap or a t interval: repetitions on a
shared VM are not normal (a descheduled repetition is an outlier several
times the others), and with 9-15 repetitions a bootstrap of the median only
resamples the same few values. The interval [x(k), x(n-k+1)] covers the true
median with a probability that follows from the binomial distribution alone,
whatever the shape of the noise, provided repetitions are independent:
ipc-bench runs them interleaved in random order, spread over the whole run."""

import math

CONFIDENCE = 0.95
# A figure is stable when its interval's half-width is within this share of
# the figure (5%: two stable runs then agree within about ±10%) ...
REL_HALF_WIDTH = 0.05
# ... or, for ratios (ipclab / raw, near 1), within this absolute amount.
ABS_HALF_WIDTH_RATIO = 0.05
# ... and no more than this share of its repetitions was disturbed (either
# process spent more than 5% of the repetition waiting for a CPU).
MAX_DISTURBED_SHARE = 1 / 3
# The U test needs a few repetitions per side to say anything.
MIN_U_SAMPLES = 4
ALPHA = 0.05


def median(values):
    """The median (the mean of the two middle values for an even count)."""
    v = sorted(values)
    n = len(v)
    if n == 0:
        raise ValueError("median of no values")
    mid = n // 2
    return v[mid] if n % 2 else (v[mid - 1] + v[mid]) / 2


def _binom_cdf_half(n, k):
    """P(X <= k) for X ~ Binomial(n, 1/2)."""
    if k < 0:
        return 0.0
    return sum(math.comb(n, i) for i in range(0, min(k, n) + 1)) / 2 ** n


def median_ci(values, confidence=CONFIDENCE):
    """(low, high, coverage): the order-statistics interval for the median.
    The widest k with coverage >= confidence is taken; with too few values
    for that (n < 6 at 95%) it is the whole range, and coverage says how much
    less than asked it is (n = 1: a point, coverage 0)."""
    v = sorted(values)
    n = len(v)
    if n == 0:
        raise ValueError("interval of no values")
    best = None
    for k in range(1, n // 2 + 1):
        coverage = 1 - 2 * _binom_cdf_half(n, k - 1)
        if coverage >= confidence:
            best = (k, coverage)
        else:
            break
    if best is None:
        coverage = 1 - 2 * _binom_cdf_half(n, 0) if n > 1 else 0.0
        return v[0], v[-1], coverage
    k, coverage = best
    return v[k - 1], v[n - k], coverage


def is_stable(value, low, high, disturbed_share=0.0, ratio=False):
    """The stability rule of summary.csv's `stable` column."""
    if value is None or low is None or high is None:
        return False
    half = (high - low) / 2
    bound = ABS_HALF_WIDTH_RATIO if ratio else REL_HALF_WIDTH * abs(value)
    return half <= bound and disturbed_share <= MAX_DISTURBED_SHARE


# Two runs of the same build agree on a figure when it moved by at most this
# share (round-trip p50s and stream throughputs) ...
AGREE_REL = 0.10
# ... or, for an ipclab/raw ratio, by at most this amount. A figure that moves
# more must have been flagged unstable in at least one of the two runs: the
# report may not present as settled a figure that the next run contradicts.
AGREE_ABS_RATIO = 0.10
AGREE_METRICS = ("rtt_p50", "stream_throughput")
AGREE_RATIOS = ("rtt_ratio",)


def agreement(old, new):
    """How two runs agree. old and new map a key to (value, stable) for the
    figures the rule covers (AGREE_METRICS and AGREE_RATIOS by metric, the
    key's last element). Returns dict(figures, figures_agree, ratios,
    ratios_agree, movers): movers lists (key, old value, new value, flagged)
    for every figure outside its bound, flagged when either run marked it
    unstable."""
    out = {"figures": 0, "figures_agree": 0, "ratios": 0, "ratios_agree": 0, "movers": []}
    for key in sorted(set(old) & set(new), key=str):
        metric = key[-1]
        (a, a_stable), (b, b_stable) = old[key], new[key]
        if metric in AGREE_RATIOS:
            kind, agrees = "ratios", abs(b - a) <= AGREE_ABS_RATIO
        elif metric in AGREE_METRICS:
            kind, agrees = "figures", a > 0 and abs(b / a - 1) <= AGREE_REL
        else:
            continue
        out[kind] += 1
        if agrees:
            out[kind + "_agree"] += 1
        else:
            out["movers"].append((key, a, b, not (a_stable and b_stable)))
    return out


def _ranks(values):
    """Mid-ranks (1-based) of values, ties sharing the mean of their ranks."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for t in range(i, j + 1):
            ranks[order[t]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _exact_u_cdf(n1, n2):
    """Counts of each U value over all arrangements (no ties): a list c with
    c[u] = number of ways, from the standard recurrence."""
    # f(u; n1, n2) = f(u - n2; n1 - 1, n2) + f(u; n1, n2 - 1)
    table = {}

    def f(u, a, b):
        if u < 0:
            return 0
        if a == 0 or b == 0:
            return 1 if u == 0 else 0
        key = (u, a, b)
        if key not in table:
            table[key] = f(u - b, a - 1, b) + f(u, a, b - 1)
        return table[key]

    return [f(u, n1, n2) for u in range(n1 * n2 + 1)]


def mann_whitney(a, b):
    """(U of a, two-sided p-value). Exact without ties for up to 20 values a
    side; otherwise the normal approximation with tie and continuity
    corrections. Raises ValueError with fewer than one value a side."""
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        raise ValueError("the U test needs values on both sides")
    ranks = _ranks(list(a) + list(b))
    r1 = sum(ranks[:n1])
    u1 = r1 - n1 * (n1 + 1) / 2
    u_small = min(u1, n1 * n2 - u1)
    ties = len(set(list(a) + list(b))) < n1 + n2
    if not ties and n1 <= 20 and n2 <= 20:
        counts = _exact_u_cdf(n1, n2)
        total = sum(counts)
        p = 2 * sum(counts[: int(u_small) + 1]) / total
        return u1, min(1.0, p)
    n = n1 + n2
    tie_term = 0.0
    i = 0
    s = sorted(list(a) + list(b))
    while i < n:
        j = i
        while j + 1 < n and s[j + 1] == s[i]:
            j += 1
        t = j - i + 1
        tie_term += t ** 3 - t
        i = j + 1
    mu = n1 * n2 / 2
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
    if sigma == 0:
        return u1, 1.0
    z = (abs(u1 - mu) - 0.5) / sigma
    p = math.erfc(max(z, 0) / math.sqrt(2))
    return u1, min(1.0, p)


def relative_half_width(f):
    """Half an interval's width as a share of its figure (inf for a zero figure)."""
    return (f["high"] - f["low"]) / 2 / abs(f["value"]) if f["value"] else math.inf


def with_host_term(f, probe):
    """Holds an absolute figure to the host's own speed as well. probe: the
    figure of the host-speed probe at the same message size (the memcpy
    throughput per CPU second). A figure's interval sees only its own
    repetitions; a host whose copy speed wandered during the run may be
    elsewhere in the next, and figures that follow copy speed move with it
    while each run's repetitions agree (seen: a unix 1 MiB stream 11% apart
    between two runs, each with a narrow interval, while memcpy of 1 MiB
    wandered ±6.8% per CPU second in the second). So such a figure is
    stable only if the probe is too: its interval's half-width within the
    same relative bound.
    The two half-widths are not added: the figure's own interval already saw
    the host move during its repetitions, and counting it twice marked 1 MiB
    figures in 30 of 32 stored runs. Sets f["host_share"] (the probe's
    relative half-width) and f["host_unstable"] when the probe alone made f
    unstable. Returns f."""
    hp = relative_half_width(probe)
    f["host_share"] = hp
    if f["stable"] and hp > REL_HALF_WIDTH:
        f["stable"] = False
        f["host_unstable"] = True
    return f


def summarise(values, disturbed=None, ratio=False):
    """A figure from its repetitions: dict(value, low, high, coverage, n,
    disturbed_share, stable)."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return None
    low, high, coverage = median_ci(values)
    flags = list(disturbed or [])
    share = sum(1 for d in flags if d) / len(flags) if flags else 0.0
    value = median(values)
    return {"value": value, "low": low, "high": high, "coverage": coverage, "n": len(values),
            "disturbed_share": share, "stable": is_stable(value, low, high, share, ratio)}


def overlaps(x, y):
    """Whether two figures' intervals overlap (then neither is 'best')."""
    return not (x["high"] < y["low"] or y["high"] < x["low"])
