"""Where Wayfinder's answers or behaviour depart from CoreDNS's, by directive and option.

The one table of these facts that code reads (`wayfinder check` reports
them next to the Corefile lines they apply to), with the departures a
plugin module declares itself (`PluginSpec.departures`), so that a new
plugin states its own. Each entry restates a
bullet of a README's "Where Wayfinder departs from CoreDNS" section (or,
for additions, the README's description of them); `source` names that
README and section, and tests/unit/test_check.py holds every source to a
heading that exists. When a README's departures change, change this table
with it.

Directives and options Wayfinder does not support at all are not here:
they stop start-up, and `wayfinder check` reports them as errors, from the
same code that loads the Corefile at start-up.
"""

from __future__ import annotations

import attrs

__all__ = ["Departure", "DEPARTURES", "all_departures", "departures_for"]


@attrs.frozen
class Departure:
    """One documented difference from CoreDNS, on a directive or one of its options."""

    #: A short stable name, "kubernetes/nodata".
    key: str
    directive: str
    #: The sub-directive (option line) it applies to, or None for the directive itself.
    option: str | None
    #: The option's first arguments that must match too ("verified" for `pods verified`).
    args: tuple[str, ...]
    text: str
    #: The README and its section that state it.
    source: str

    def applies(self, directive: str, option: str | None, args: tuple[str, ...]) -> bool:
        return (
            self.directive == directive
            and self.option == option
            and tuple(args[: len(self.args)]) == self.args
        )


_DNS = "discovery/dns/README.md#where-wayfinder-departs-from-coredns-and-why"
_OPS_READY = "discovery/ops/README.md#ready"
_OPS_PROMETHEUS = "discovery/ops/README.md#prometheus"
_OPS_RELOAD = "discovery/ops/README.md#reload"


def _d(key, directive, option, text, source, args=()):
    return Departure(key, directive, option, tuple(args), text, source)


DEPARTURES: tuple[Departure, ...] = (
    _d("kubernetes/nodata", "kubernetes", None,
       "a name that exists with other record types answers NODATA, never NXDOMAIN (RFC 2308); CoreDNS answers "
       "NXDOMAIN for e.g. dns-version.ZONE A, TXT at the apex, svc.ZONE and NAMESPACE.svc.ZONE", _DNS),
    _d("kubernetes/startup", "kubernetes", None,
       "until the cache has synced, names in the zones get SERVFAIL; CoreDNS does not serve at all for up to "
       "startup_timeout (/ready waits for the sync in both)", "discovery/dns/README.md#start-up"),
    _d("kubernetes/soa-below-apex", "kubernetes", None,
       "SOA at a name below the apex that does not exist is NXDOMAIN; CoreDNS answers NODATA without looking", _DNS),
    _d("kubernetes/case", "kubernetes", None,
       "the zone is compared without case everywhere (RFC 4343); CoreDNS answers `Cluster.Local. NS` NODATA", _DNS),
    _d("kubernetes/ip6-nibbles", "kubernetes", None,
       "ip6.arpa names need exactly 32 nibbles; CoreDNS ignores up to three extra leading labels", _DNS),
    _d("kubernetes/fqdn-slices", "kubernetes", None,
       "FQDN EndpointSlices are ignored; CoreDNS reads an FQDN address as a CNAME target", _DNS),
    _d("kubernetes/own-addresses", "kubernetes", None,
       "without `bind`, ns.dns.ZONE answers with the address the host reaches the outside with; CoreDNS finds "
       "none", _DNS),
    _d("kubernetes/pods-verified", "kubernetes", "pods",
       "terminating Pods are ignored; CoreDNS keeps an already cached Pod until its deletion", _DNS, ("verified",)),
    _d("kubernetes/manifests", "kubernetes", "manifests",
       "Wayfinder's addition (CoreDNS has no such option): a Service with publishNotReadyAddresses publishes "
       "not-ready endpoints, and one without a cluster IP yet exists without addresses", _DNS),
    _d("loadbalance/rotations", "loadbalance", None,
       "hands out up to 8 prepared rotations of each address RRset in turn; CoreDNS shuffles at random per answer",
       "discovery/dns/README.md#loadbalance"),
    _d("cache/eviction", "cache", None,
       "a full cache evicts its oldest entry; CoreDNS evicts a random entry of the full shard",
       "discovery/dns/README.md#cache"),
    _d("cache/prefetch-popularity", "cache", "prefetch",
       "popularity is counted inside the prefetch window only (answers before it come from the table of "
       "rendered answers)", "discovery/dns/README.md#cache"),
    _d("ready/every-cache", "ready", None,
       "every kubernetes cache of the process counts, whichever block has `ready`; while shutting down /ready "
       "answers 503 where CoreDNS closes the listener", _OPS_READY),
    _d("prometheus/runtime", "prometheus", None,
       "no go_* metrics (python_* and process_* instead)", _OPS_PROMETHEUS),
    _d("reload/in-place", "reload", None,
       "keeps unchanged sockets, caches and plugins and opens new ports first, so a reload that cannot open a "
       "port fails as a whole; coredns_reload_version_info's value is another digest; SIGUSR1 does not reload",
       _OPS_RELOAD),
    _d("webhook/addition", "webhook", None,
       "Wayfinder's addition (CoreDNS has no webhook): the admission webhook, fed by this block's kubernetes cache",
       "webhook/README.md#name"),
)


def all_departures() -> tuple[Departure, ...]:
    """This table and every departure a plugin declares."""
    from . import plugin

    return DEPARTURES + tuple(d for spec in plugin.specs() for d in spec.departures)


def departures_for(directive: str, option: str | None, args: tuple[str, ...]) -> tuple[Departure, ...]:
    """The documented departures of a directive line (option None) or one of its option lines."""
    return tuple(d for d in all_departures() if d.applies(directive, option, args))
