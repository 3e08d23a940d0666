"""Specification of label selectors, as Kubernetes' labels.Parse reads and matches them."""

import pytest

from discovery.cache.selectors import LabelSelector, Requirement, SelectorError


def labels(**pairs):
    """Labels as the value objects hold them: sorted (key, value) pairs."""
    return tuple(sorted(pairs.items()))


@pytest.mark.parametrize(
    "text, labelled, matches",
    [
        pytest.param("app", labels(app="web"), True, id="exists-present"),
        pytest.param("app", labels(app=""), True, id="exists-with-empty-value"),
        pytest.param("app", labels(tier="web"), False, id="exists-absent"),
        pytest.param("!app", labels(tier="web"), True, id="not-exists-absent"),
        pytest.param("!app", labels(app="web"), False, id="not-exists-present"),
        pytest.param("app=web", labels(app="web"), True, id="equals"),
        pytest.param("app=web", labels(app="api"), False, id="equals-other-value"),
        pytest.param("app=web", (), False, id="equals-absent"),
        pytest.param("app==web", labels(app="web"), True, id="double-equals"),
        pytest.param("app!=web", labels(app="api"), True, id="not-equals-other-value"),
        pytest.param("app!=web", labels(app="web"), False, id="not-equals-same-value"),
        pytest.param("app!=web", (), True, id="not-equals-absent-matches"),
        pytest.param("env in (prod,qa)", labels(env="qa"), True, id="in"),
        pytest.param("env in (prod,qa)", labels(env="dev"), False, id="in-other-value"),
        pytest.param("env in (prod,qa)", (), False, id="in-absent"),
        pytest.param("env notin (prod,qa)", labels(env="dev"), True, id="notin"),
        pytest.param("env notin (prod,qa)", labels(env="prod"), False, id="notin-listed-value"),
        pytest.param("env notin (prod,qa)", (), True, id="notin-absent-matches"),
        pytest.param("app=", labels(app=""), True, id="empty-value-equals"),
        pytest.param("app=", labels(app="web"), False, id="empty-value-other"),
        pytest.param("env in ()", labels(env=""), True, id="empty-set-holds-the-empty-value"),
        pytest.param("env in ()", labels(env="x"), False, id="empty-set-other"),
        pytest.param("env in (a,,b)", labels(env=""), True, id="empty-item-in-set"),
        pytest.param("app=web,env in (prod),!debug", labels(app="web", env="prod"), True, id="all-requirements"),
        pytest.param("app=web,env in (prod),!debug", labels(app="web", env="prod", debug="1"), False,
                     id="one-requirement-fails"),
        pytest.param("app.kubernetes.io/name=web", (("app.kubernetes.io/name", "web"),), True, id="prefixed-key"),
        pytest.param("x in (in,notin)", (("x", "notin"),), True, id="keywords-as-values"),
    ],
)
def test_matches(text, labelled, matches):
    """A selector matches a label set exactly when every requirement holds."""
    assert LabelSelector.parse(text).matches(labelled) is matches


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param("environment=prod", "environment=prod", id="coredns-setup-test-equals"),
        pytest.param(
            "environment in (production, staging, qa),application=nginx",
            "application=nginx,environment in (production,qa,staging)",
            id="coredns-setup-test-set-sorted-by-key-and-value",
        ),
        pytest.param("app==web", "app=web", id="double-equals-folds-to-equals"),
        pytest.param("b=1,a=2", "a=2,b=1", id="sorted-by-key"),
        pytest.param("  app = web ,  tier  ", "app=web,tier", id="white-space-ignored"),
        pytest.param("!debug", "!debug", id="does-not-exist"),
        pytest.param("env notin (b,a,b)", "env notin (a,b)", id="notin-values-deduplicated-and-sorted"),
        pytest.param("app!=web", "app!=web", id="not-equals"),
    ],
)
def test_to_text_is_the_canonical_form(text, expected):
    """to_text renders requirements sorted by key with sorted values, as FormatLabelSelector does."""
    assert LabelSelector.parse(text).to_text() == expected


@pytest.mark.parametrize(
    "text",
    [
        "app",
        "!app",
        "app=web",
        "app=",
        "app!=web",
        "env in (prod)",
        "env in (prod,qa)",
        "env notin (prod)",
        "env notin (prod,qa)",
        "env in ()",
        "env in (a,,b)",
        "example.com/owner=team-a,tier in (front,back),!legacy",
    ],
)
def test_to_text_round_trips(text):
    """Parsing to_text's output gives back an equal selector."""
    selector = LabelSelector.parse(text)
    assert LabelSelector.parse(selector.to_text()) == selector


def test_selectors_equal_regardless_of_order():
    """Two spellings of the same requirements are equal and hash alike (sources compare configs)."""
    first, second = LabelSelector.parse("a=1,b in (x,y)"), LabelSelector.parse("b in (y, x), a==1")
    assert first == second and hash(first) == hash(second)


def test_parse_builds_requirements():
    """Each requirement keeps its key, operator and sorted values."""
    assert LabelSelector.parse("tier,env notin (qa,dev),!debug,app=web").requirements == (
        Requirement("app", "in", ("web",)),
        Requirement("debug", "!exists"),
        Requirement("env", "notin", ("dev", "qa")),
        Requirement("tier", "exists"),
    )


@pytest.mark.parametrize(
    "text, message",
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("   ", "empty", id="blank"),
        pytest.param("a,", "after the last ','", id="trailing-comma"),
        pytest.param(",a", "not a valid label key", id="leading-comma"),
        pytest.param("a,,b", "not a valid label key", id="double-comma"),
        pytest.param("a b", "expected '=', '!=', 'in', 'notin' or ','", id="missing-operator"),
        pytest.param("a in x", "expected '('", id="set-without-parenthesis"),
        pytest.param("a in (x", "expected a value or ')'", id="unterminated-set"),
        pytest.param("environment in (production, qa", "expected a value or ')'", id="coredns-setup-test-unterminated"),
        pytest.param("a in (x y)", "expected ',' or ')'", id="set-values-without-comma"),
        pytest.param("a=b=c", "expected ','", id="two-operators"),
        pytest.param("a=b c=d", "expected ','", id="requirements-without-comma"),
        pytest.param("!a=b", "expected ','", id="not-exists-with-value"),
        pytest.param("-a=b", "'-a' is not a valid label key", id="key-starts-with-dash"),
        pytest.param("example.com/=b", "not a valid label key", id="prefix-without-name"),
        pytest.param("Example.com/a=b", "not a valid label key", id="upper-case-prefix"),
        pytest.param("x>5", "not a valid label key", id="greater-than-is-not-supported"),
        pytest.param("a" * 64 + "=b", "not a valid label key", id="key-name-longer-than-63"),
        pytest.param("a=-b", "'-b' is not a valid label value", id="value-starts-with-dash"),
        pytest.param("a=" + "b" * 64, "not a valid label value", id="value-longer-than-63"),
        pytest.param("a in (b,-c)", "'-c' is not a valid label value", id="bad-value-in-set"),
        pytest.param("a=b)", "expected ','", id="stray-parenthesis"),
    ],
)
def test_parse_errors_say_what_was_expected(text, message):
    """A malformed selector raises SelectorError saying what is wrong or what was expected."""
    with pytest.raises(SelectorError) as caught:
        LabelSelector.parse(text)
    assert message in str(caught.value)


def test_selector_error_is_a_value_error():
    """SelectorError is a ValueError, so generic callers can catch bad input as such."""
    assert issubclass(SelectorError, ValueError)
