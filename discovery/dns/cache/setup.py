"""The `cache` directive's configuration and its parsing (CoreDNS's setup.go)."""

from __future__ import annotations


import attrs

from ...corefile import Directive
from ...zones import normalize_zone



#: CoreDNS's dnsutil.MaximumDefaultTTL and MinimalDefaultTTL.
MAX_TTL = 3600
MIN_TTL = 5
#: CoreDNS's maxNTTL.
MAX_DENIAL_TTL = MAX_TTL // 2
#: CoreDNS's defaultCap, before rounding to whole shards.
DEFAULT_CAPACITY = 10000
#: CoreDNS splits a cache into 256 shards of at least 4 entries each.
SHARDS = 256
MIN_SHARD = 4
#: RFC 2308 section 7.1: SERVFAIL may be cached for at most five minutes.
MAX_SERVFAIL_TTL = 300.0
#: RFC 8767 section 4 recommends at most five minutes between failed refreshes.
MAX_STALE_RECHECK = 300.0


def effective_capacity(capacity: int) -> int:
    """What CoreDNS really holds for a CAPACITY: whole shards, at least 1024."""
    return max(int(capacity / SHARDS), MIN_SHARD) * SHARDS


@attrs.frozen
class CacheConfig:
    """One `cache` directive. Durations in seconds; TTLs in whole seconds."""

    zones: tuple[str, ...]
    success_capacity: int = effective_capacity(DEFAULT_CAPACITY)
    success_ttl: int = MAX_TTL
    success_min_ttl: int = MIN_TTL
    denial_capacity: int = effective_capacity(DEFAULT_CAPACITY)
    denial_ttl: int = MAX_DENIAL_TTL
    denial_min_ttl: int = MIN_TTL
    #: Prefetch entries seen this many times without a gap of
    #: prefetch_duration (0: never), once prefetch_percentage of the TTL is left.
    prefetch: int = 0
    prefetch_duration: float = 60.0
    prefetch_percentage: int = 10
    #: Serve expired entries for up to this long (0: never).
    serve_stale: float = 0.0
    #: serve_stale's verify mode: ask the next plugin before serving stale.
    verify_stale: bool = False
    #: How long verify waits for the next plugin (0: as long as it takes).
    verify_timeout: float = 0.0
    #: The TTL of stale answers.
    stale_ttl: int = 0
    #: After a failed refresh of a stale entry, wait this long before another.
    stale_recheck: float = 0.0
    servfail_ttl: float = 5.0
    success_disabled: tuple[str, ...] = ()
    denial_disabled: tuple[str, ...] = ()
    keepttl: bool = False





def _integer(option: Directive, text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise option.error(f"cache: {what} {text!r} is not an integer") from None


def _duration(option: Directive, text: str, what: str) -> float:
    return option.duration(text, f"cache: {what}")


def _ttl(option: Directive, text: str) -> int:
    ttl = _integer(option, text, "TTL")
    if ttl <= 0:
        raise option.error(f"cache: cache TTL can not be zero or negative: {ttl}")
    return ttl


def _capacity_and_ttls(option: Directive, kind: str) -> dict:
    option.expect_args(1, 3, f"{kind} CAPACITY [TTL] [MINTTL]")
    option.expect_no_block()
    args = option.args
    values = {f"{kind}_capacity": effective_capacity(_integer(option, args[0], "capacity"))}
    if len(args) > 1:
        values[f"{kind}_ttl"] = _ttl(option, args[1])
    if len(args) > 2:
        minimum = _integer(option, args[2], "min TTL")
        if minimum < 0:
            raise option.error(f"cache: cache min TTL can not be negative: {minimum}")
        values[f"{kind}_min_ttl"] = minimum
    return values


def _prefetch(option: Directive) -> dict:
    option.expect_args(1, 3, "prefetch AMOUNT [[DURATION] [PERCENTAGE%]]")
    amount = _integer(option, option.args[0], "prefetch amount")
    if amount < 0:
        raise option.error(f"cache: prefetch amount should be positive: {amount}")
    values: dict = {"prefetch": amount}
    if len(option.args) > 1:
        values["prefetch_duration"] = _duration(option, option.args[1], "prefetch duration")
    if len(option.args) > 2:
        text = option.args[2]
        if not text.endswith("%"):
            raise option.error(f"cache: last character of percentage should be `%`, but is: {text[-1:]!r}")
        percentage = _integer(option, text[:-1], "prefetch percentage")
        if not 10 <= percentage <= 90:
            raise option.error(f"cache: percentage should fall in range [10, 90]: {percentage}")
        values["prefetch_percentage"] = percentage
    return values


def _stale_ttl(option: Directive, text: str) -> int:
    ttl = _duration(option, text, "serve_stale response TTL")
    if ttl < 0:
        raise option.error("cache: invalid negative response TTL for serve_stale")
    if ttl != int(ttl):
        raise option.error("cache: serve_stale response TTL must be a whole number of seconds")
    if ttl > 2**32 - 1:
        raise option.error("cache: serve_stale response TTL exceeds the DNS TTL range")
    return int(ttl)


def _stale_recheck(option: Directive, text: str) -> float:
    recheck = _duration(option, text, "serve_stale failure recheck")
    if recheck < 0:
        raise option.error("cache: invalid negative failure recheck for serve_stale")
    if recheck > MAX_STALE_RECHECK:
        raise option.error("cache: serve_stale failure recheck cannot exceed 5 minutes")
    return recheck


def _serve_stale(option: Directive) -> dict:
    option.expect_args(
        0, 5,
        "serve_stale [DURATION] [immediate [RESPONSE_TTL [FAILURE_RECHECK]] | "
        "verify [VERIFY_TIMEOUT [RESPONSE_TTL [FAILURE_RECHECK]]]]",
    )
    args = option.args
    values: dict = {"serve_stale": 3600.0, "verify_stale": False, "verify_timeout": 0.0, "stale_ttl": 0,
                    "stale_recheck": 0.0}
    if args:
        duration = _duration(option, args[0], "serve_stale duration")
        if duration < 0:
            raise option.error("cache: invalid negative duration for serve_stale")
        values["serve_stale"] = duration
    if len(args) > 1:
        mode = args[1].lower()
        if mode not in ("immediate", "verify"):
            raise option.error(f"cache: invalid value for serve_stale refresh mode: {mode}")
        values["verify_stale"] = mode == "verify"
    rest = list(args[2:])
    if values["verify_stale"] and rest:
        timeout = _duration(option, rest.pop(0), "serve_stale verify timeout")
        if timeout < 0:
            raise option.error("cache: invalid negative timeout for serve_stale verify")
        values["verify_timeout"] = timeout
    if len(rest) > 2:
        raise option.error("cache: serve_stale: too many arguments for the immediate mode")
    if rest:
        values["stale_ttl"] = _stale_ttl(option, rest[0])
    if len(rest) > 1:
        values["stale_recheck"] = _stale_recheck(option, rest[1])
    return values


def setup_cache(directive: Directive, ctx) -> CacheConfig:
    """Parse a `cache` directive. Raises CorefileError naming file:line."""
    args = list(directive.args)
    values: dict = {}
    if args:
        try:
            ttl = int(args[0])
        except ValueError:
            pass
        else:
            if ttl <= 0:
                raise directive.error(f"cache: cache TTL can not be zero or negative: {ttl}")
            values["success_ttl"] = values["denial_ttl"] = ttl
            args = args[1:]
    zones = tuple(normalize_zone(zone) for zone in args) or tuple(ctx.zones)
    for option in directive.block:
        name = option.name
        if name in ("success", "denial"):
            values.update(_capacity_and_ttls(option, name))
        elif name == "prefetch":
            values.update(_prefetch(option))
        elif name == "serve_stale":
            values.update(_serve_stale(option))
        elif name == "serve_stale_policy":
            raise option.error("cache: serve_stale_policy is not supported")
        elif name == "servfail":
            option.expect_args(1, 1, "servfail DURATION")
            duration = _duration(option, option.args[0], "servfail")
            if duration < 0:
                raise option.error("cache: invalid negative ttl for servfail")
            if duration > MAX_SERVFAIL_TTL:
                raise option.error("cache: caching SERVFAIL responses over 5 minutes is not permitted")
            values["servfail_ttl"] = duration
        elif name == "disable":
            option.expect_args(1, usage="disable success|denial [ZONES...]")
            kind = option.args[0]
            if kind not in ("success", "denial"):
                raise option.error('cache: cache type for disable must be "success" or "denial"')
            # Without zones the whole cache of that kind is off; a later
            # `disable` of the same kind replaces an earlier one (as CoreDNS).
            values[f"{kind}_disabled"] = tuple(normalize_zone(z) for z in option.args[1:]) or (".",)
        elif name == "keepttl":
            option.expect_args(0, 0, "keepttl")
            values["keepttl"] = True
        else:
            raise option.error(f"cache: unknown property '{name}'")
    return CacheConfig(zones=zones, **values)
