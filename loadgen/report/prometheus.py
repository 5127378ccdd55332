"""A run's metrics in the Prometheus exposition format, with the official client library.

:class:`RunCollector` is a custom collector: at each scrape it reads the runs it is given
(:class:`~loadgen.report.run_metrics.RunMetrics`, fed by the load loop) and builds the metric
families from that copy, so nothing is registered in the client's global default registry and
each run (or server) has its own :class:`~prometheus_client.CollectorRegistry`.

Names (the README's "Prometheus" part lists them with an example scrape)::

    loadgen_run_info{command}                                  1
    loadgen_requests_total{subset,app_id}                      requests that ended (failed ones too)
    loadgen_answers_total{subset,app_id}                       usable answers (200 with an APP_ID)
    loadgen_errors_total{kind}                                 failed requests by kind
    loadgen_request_duration_seconds{subset,app_id}            histogram, fixed buckets (DURATION_BUCKETS_S)
    loadgen_verdict{state}                                     1 for the current state, 0 for the others
    loadgen_verdict_final                                      1 once the verdict is the run's final one
    loadgen_shift_outcome{outcome}                             shift: 1 for running, shifted, failed, interrupted
                                                               or error
    loadgen_judged_answers                                     answers the verdict judged
    loadgen_expected_share{subset}                             the expected weight, as a fraction
    loadgen_split_share{subset,bound=lower|observed|upper}     observed share and its interval
    loadgen_split_band_share{subset,bound=lower|upper}         the band the interval must fall in
    loadgen_latency_comparison{subset,baseline,quantile,state} with --latency: 1 for each comparison's state
    loadgen_latency_quantile_seconds{subset,quantile,bound}    the quantile's interval (canaries and baseline)
    loadgen_latency_ratio{subset,baseline,quantile,bound}      canary / baseline quantile, bounded
    loadgen_error_comparison{subset,baseline,state}            with --error-margin: 1 for each comparison's state
    loadgen_error_share{subset,bound=lower|observed|upper}     error rate and its interval

``subset`` is "" for a request whose answer named no subset (a transport error, an unmapped
APP_ID, or ``loadgen run``, which has no APP_ID map); ``app_id`` is "" when no APP_ID came back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from loadgen.report.run_metrics import DURATION_BUCKETS_S, STATES, MetricsView, RunMetrics

__all__ = ["CONTENT_TYPE", "RunCollector", "metrics_registry", "render", "wsgi_app"]

CONTENT_TYPE = CONTENT_TYPE_LATEST  # the text format 0.0.4 that render() produces

SHIFT_OUTCOMES = ("running", "shifted", "failed", "interrupted", "error")

Runs = Callable[[], Iterable[tuple[Mapping[str, str], RunMetrics]]]


class RunCollector(Collector):
    """The metric families of one run or several. ``runs``: the run's :class:`RunMetrics`, or a
    callable giving, at each scrape, the runs to show with extra labels of their own (``loadgen
    serve``: ``lambda: [({"run_id": i}, m) for i, m in live.items()]``): every series of a run
    carries its labels, so several runs share one page without clashing."""

    def __init__(self, runs: RunMetrics | Runs) -> None:
        self._runs: Runs = (lambda: [({}, runs)]) if isinstance(runs, RunMetrics) else runs

    def collect(self) -> Iterator[Metric]:
        views = [(dict(labels), metrics.read()) for labels, metrics in self._runs()]
        extra = sorted({name for labels, _ in views for name in labels})
        families = _Families(extra)
        for labels, view in views:
            families.add(view, [labels.get(name, "") for name in extra])
        yield from families.all()


def metrics_registry(runs: RunMetrics | Runs) -> CollectorRegistry:
    """A registry of its own (never the client's global one) holding a :class:`RunCollector`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunCollector(runs))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The page a GET /metrics answers with (content type :data:`CONTENT_TYPE`): for a server
    that is not WSGI (aiohttp: ``web.Response(body=render(r), headers={"Content-Type": CONTENT_TYPE})``)."""
    return generate_latest(registry)


def wsgi_app(registry: CollectorRegistry) -> Callable[..., Any]:
    """The client library's WSGI app serving ``registry`` (GET; gzip when asked; OpenMetrics on Accept)."""
    return make_wsgi_app(registry)


class _Families:
    """The families of one scrape, filled run by run; ``extra``: the label names every run adds."""

    def __init__(self, extra: list[str]) -> None:
        self.extra = extra

        def gauge(name: str, doc: str, *labels: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=[*extra, *labels])

        def counter(name: str, doc: str, *labels: str) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=[*extra, *labels])

        self.info = gauge("loadgen_run_info", "The loadgen command whose run these metrics are (always 1).", "command")
        self.requests = counter("loadgen_requests", "Requests that ended (failed ones too), by the subset and APP_ID "
                                "their answer named ('' when none).", "subset", "app_id")
        self.answers = counter("loadgen_answers", "Usable answers (HTTP 200 naming an APP_ID), by subset and APP_ID.",
                               "subset", "app_id")
        self.errors = counter("loadgen_errors", "Failed requests by kind (a transport error, or http_STATUS, "
                              "no_app_id).", "kind")
        self.durations = HistogramMetricFamily(
            "loadgen_request_duration_seconds", "Latency from each request's intended start to its answer "
            "(corrected for coordinated omission), by subset and APP_ID.", labels=[*extra, "subset", "app_id"])
        self.verdict = gauge("loadgen_verdict", "1 for the verdict's current state (RUNNING until decided).", "state")
        self.final = gauge("loadgen_verdict_final", "1 once the verdict is the run's final one.")
        self.outcome = gauge("loadgen_shift_outcome", "A shift's outcome: 1 for running (its verifications' verdicts "
                             "above), then shifted, failed, interrupted or error.", "outcome")
        self.judged = gauge("loadgen_judged_answers", "Answers the verdict was judged on.")
        self.expected = gauge("loadgen_expected_share", "Each subset's expected share of the answers (0-1).", "subset")
        self.share = gauge("loadgen_split_share", "Each subset's observed share and the bounds of the judge's "
                           "interval for its true share (0-1).", "subset", "bound")
        self.band = gauge("loadgen_split_band_share", "The band each subset's interval must fall in to PASS (0-1).",
                          "subset", "bound")
        self.latency = gauge("loadgen_latency_comparison", "1 for the state of each canary's latency comparison "
                             "with the baseline (--latency).", "subset", "baseline", "quantile", "state")
        self.quantile = gauge("loadgen_latency_quantile_seconds", "The interval for each subset's latency quantile "
                              "(--latency; failures count as +Inf).", "subset", "quantile", "bound")
        self.ratio = gauge("loadgen_latency_ratio", "Canary quantile over the baseline's, bounded (--latency).",
                           "subset", "baseline", "quantile", "bound")
        self.error_cmp = gauge("loadgen_error_comparison", "1 for the state of each canary's error-rate comparison "
                               "with the baseline (--error-margin).", "subset", "baseline", "state")
        self.error_share = gauge("loadgen_error_share", "Each subset's error rate and its interval (--error-margin; "
                                 "0-1).", "subset", "bound")

    def all(self) -> list[Metric]:
        families = [self.info, self.requests, self.answers, self.errors, self.durations, self.verdict, self.final,
                    self.outcome, self.judged, self.expected, self.share, self.band, self.latency, self.quantile,
                    self.ratio, self.error_cmp, self.error_share]
        return [f for f in families if f.samples]  # a family with nothing to show (yet) is left out

    def add(self, view: MetricsView, run: list[str]) -> None:
        self.info.add_metric([*run, view.command], 1)
        for (subset, app_id), n in sorted(view.requests.items()):
            self.requests.add_metric([*run, subset, app_id], n)
        for (subset, app_id), n in sorted(view.answers.items()):
            self.answers.add_metric([*run, subset, app_id], n)
        for kind, n in sorted(view.errors.items()):
            self.errors.add_metric([*run, kind], n)
        for (subset, app_id), d in sorted(view.durations.items()):
            cumulative, buckets = 0, []
            for edge, count in zip([*DURATION_BUCKETS_S, float("inf")], d.buckets, strict=True):
                cumulative += count
                buckets.append((floatToGoString(edge), cumulative))
            self.durations.add_metric([*run, subset, app_id], buckets, d.total_s)
        if view.judged:
            self._verdict(view, run)
        if view.outcome is not None:
            for name in SHIFT_OUTCOMES:
                self.outcome.add_metric([*run, name], 1 if name == view.outcome else 0)

    def _verdict(self, view: MetricsView, run: list[str]) -> None:
        verdict = view.verdict
        state = str(verdict.state) if verdict is not None else "RUNNING"
        for name in STATES:
            self.verdict.add_metric([*run, name], 1 if name == state else 0)
        self.final.add_metric(run, 1 if view.final else 0)
        if verdict is None:
            return
        self.judged.add_metric(run, verdict.n)
        for s in verdict.subsets:
            self.expected.add_metric([*run, s.name], s.expected)
            for bound, value in (("lower", s.lower), ("observed", s.share), ("upper", s.upper)):
                self.share.add_metric([*run, s.name, bound], value)
            for bound, value in zip(("lower", "upper"), s.band, strict=True):
                self.band.add_metric([*run, s.name, bound], value)
        if view.comparisons is not None:
            self._comparisons(view.comparisons, run)

    def _comparisons(self, worse: Any, run: list[str]) -> None:
        quantiles: dict[tuple[str, str], tuple[float, float]] = {}
        for c in worse.latency:
            for name in STATES:
                state = 1 if str(c.state) == name else 0
                self.latency.add_metric([*run, c.subset, c.baseline, c.quantile, name], state)
            quantiles[(c.subset, c.quantile)] = (c.canary.lower_s, c.canary.upper_s)
            quantiles[(c.baseline, c.quantile)] = (c.base.lower_s, c.base.upper_s)
            for bound, value in (("lower", c.ratio_lower), ("upper", c.ratio_upper)):
                self.ratio.add_metric([*run, c.subset, c.baseline, c.quantile, bound], value)
        for (subset, quantile), (lower, upper) in quantiles.items():
            self.quantile.add_metric([*run, subset, quantile, "lower"], lower)
            self.quantile.add_metric([*run, subset, quantile, "upper"], upper)
        shares: dict[str, Sequence[float]] = {}
        for e in worse.errors:
            for name in STATES:
                self.error_cmp.add_metric([*run, e.subset, e.baseline, name], 1 if str(e.state) == name else 0)
            shares[e.subset] = (e.rate_lower, e.rate, e.rate_upper)
            shares[e.baseline] = (e.base_lower, e.base_rate, e.base_upper)
        for subset, values in shares.items():
            for bound, value in zip(("lower", "observed", "upper"), values, strict=True):
                self.error_share.add_metric([*run, subset, bound], value)
