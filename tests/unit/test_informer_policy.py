"""The informer's retry policy, its resume state, its hand-off to the reactor, and trigger times."""

from __future__ import annotations

import pytest

from discovery.cache.informer import Backoff, Handoff, Progress, parse_trigger_time, service_kind


# --- Progress ------------------------------------------------------------------------


def test_a_new_stream_must_list():
    """A stream without a resourceVersion lists before it can watch."""
    assert Progress().must_list


def test_an_event_advances_the_resume_version_and_clears_failures():
    """Reading an event means the API answers again: resume from its version, no more backoff."""
    assert Progress("10", failures=3).advanced("12") == Progress("12", 0)


def test_an_event_without_a_version_keeps_the_previous_one():
    """A clean end of a watch carries no version: resume from the last one read."""
    assert Progress("10").advanced(None) == Progress("10")


def test_a_failure_keeps_the_resume_version():
    """A dropped watch resumes from where it was, one failure further on."""
    assert Progress("10", 1).failed() == Progress("10", 2)


def test_expiry_forgets_the_resume_version_so_the_stream_relists():
    """After 410 Gone the stream must list again."""
    assert Progress("10", 2).expired().must_list


# --- Backoff -------------------------------------------------------------------------


def backoff(u: float, **kwargs) -> Backoff:
    return Backoff(initial=1.0, factor=2.0, cap=30.0, jitter=0.5, random=lambda: u, **kwargs)


def test_first_failure_waits_the_initial_delay_without_jitter():
    """With the random draw at 0, the first wait is the initial delay."""
    assert backoff(0.0).delay(1) == 1.0


def test_each_failure_doubles_the_wait():
    """Waits grow exponentially: 1, 2, 4, 8 seconds."""
    assert [backoff(0.0).delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]


def test_the_wait_is_capped():
    """However many failures, the wait never exceeds the cap."""
    assert backoff(0.0).delay(10) == 30.0
    assert backoff(0.0).delay(10_000) == 30.0


def test_jitter_takes_up_to_its_fraction_off_the_wait():
    """With jitter 0.5, the wait lies between half and all of the base delay."""
    assert backoff(0.999999).delay(3) == pytest.approx(2.0, rel=1e-5)
    assert backoff(0.5).delay(3) == 3.0


def test_default_backoff_follows_client_go():
    """The defaults: 0.8 s doubling up to 30 s."""
    default = Backoff(random=lambda: 0.0)
    assert (default.delay(1), default.delay(2), default.delay(20)) == (0.8, 1.6, 30.0)


# --- Handoff ---------------------------------------------------------------------------


class RecordingReactor:
    """Records callFromThread calls instead of running them."""

    def __init__(self):
        self.calls = []

    def callFromThread(self, f, *args):
        self.calls.append((f, args))

    def run_pending(self):
        calls, self.calls = self.calls, []
        for f, args in calls:
            f(*args)


def test_messages_put_together_arrive_in_one_batch():
    """A burst of messages costs one wake-up of the reactor and arrives as one batch, in order."""
    reactor, batches = RecordingReactor(), []
    handoff = Handoff(reactor, batches.append)
    for message in ("a", "b", "c"):
        handoff.put(message)
    assert len(reactor.calls) == 1
    reactor.run_pending()
    assert batches == [["a", "b", "c"]]


def test_a_message_after_a_delivery_schedules_another():
    """Once a batch is delivered, the next message wakes the reactor again."""
    reactor, batches = RecordingReactor(), []
    handoff = Handoff(reactor, batches.append)
    handoff.put("a")
    reactor.run_pending()
    handoff.put("b")
    reactor.run_pending()
    assert batches == [["a"], ["b"]]


# --- trigger times ---------------------------------------------------------------------


@pytest.mark.parametrize("text, seconds", [
    ("2024-05-01T10:00:00Z", 1714557600.0),
    ("2024-05-01T10:00:00.25Z", 1714557600.25),
    # Go's RFC3339Nano writes up to nine digits.
    ("2024-05-01T10:00:00.123456789Z", 1714557600.123456),
    ("2024-05-01T12:00:00+02:00", 1714557600.0),
])
def test_trigger_time_reads_rfc3339(text, seconds):
    """The annotation is RFC 3339 with optional fraction and any offset."""
    assert parse_trigger_time(text) == pytest.approx(seconds, abs=1e-6)


@pytest.mark.parametrize("text", ["yesterday", "2024-05-01T10:00:00", ""])
def test_trigger_time_without_zone_or_unreadable_is_a_value_error(text):
    """A time without a zone cannot be compared with our clock."""
    with pytest.raises(ValueError):
        parse_trigger_time(text)


def test_service_kind_labels_follow_coredns():
    """A headless Service's slices are headless_with_selector; others cluster_ip."""
    assert (service_kind(True), service_kind(False)) == ("headless_with_selector", "cluster_ip")
