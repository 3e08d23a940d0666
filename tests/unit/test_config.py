"""Specification of assembly: server block keys to zones and ports, the directive registry, the config tree.

Keys follow CoreDNS (core/dnsserver/address.go, plugin.SplitHostPort): an
optional dns:// scheme, a zone or a CIDR (standing for its reverse zones), an
optional port. Directives are checked against the declarations of the
modules that implement them (`discovery.plugin`), in CoreDNS's plugin.cfg order.
"""

import attrs
import pytest

import importlib
import pkgutil

import discovery
import webhook
from discovery import plugin
from discovery.config import Config, ServerBlock, SetupContext, load, load_text
from discovery.corefile import CorefileError
from discovery.dns.bind import setup_bind

#: CoreDNS's plugin.cfg order for the directives Wayfinder implements or plans to.
PLUGIN_CFG_ORDER = [
    "reload", "nsid", "bufsize", "bind", "ready", "health", "prometheus", "errors", "log", "local",
    "any", "chaos", "loadbalance", "rewrite", "autopath", "acl", "cache", "header", "minimal",
    "template", "transfer", "hosts", "k8s_external", "kubernetes", "loop", "forward", "whoami",
]


def servers(text, **kwargs):
    return [(server.zones, server.port) for server in load_text(text, **kwargs).servers]


def load_error(text, **kwargs):
    with pytest.raises(CorefileError) as caught:
        load_text(text, **kwargs)
    return caught.value


# --- keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys, expected",
    [
        pytest.param(".", [((".",), 53)], id="root-default-port"),
        pytest.param(".:53", [((".",), 53)], id="root-with-port"),
        pytest.param("example.org", [(("example.org.",), 53)], id="zone-made-fully-qualified"),
        pytest.param("Example.ORG.:1053", [(("example.org.",), 1053)], id="zone-lower-cased"),
        pytest.param("dns://.:53", [((".",), 53)], id="dns-scheme"),
        pytest.param("DNS://example.org:5353", [(("example.org.",), 5353)], id="dns-scheme-any-case"),
        pytest.param("10.0.0.0/8", [(("10.in-addr.arpa.",), 53)], id="cidr-on-octet-boundary"),
        pytest.param("10.1.2.3/8:1053", [(("10.in-addr.arpa.",), 1053)], id="cidr-host-bits-and-port"),
        pytest.param("10.0.0.0/23", [(("0.0.10.in-addr.arpa.", "1.0.10.in-addr.arpa."), 53)],
                     id="cidr-split-at-the-next-octet"),
        pytest.param("fd00::/64", [(("0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",), 53)], id="ipv6-cidr"),
        pytest.param("fd00::/64:1053", [(("0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",), 1053)],
                     id="ipv6-cidr-with-port"),
        pytest.param("fd00::/7", [(("c.f.ip6.arpa.", "d.f.ip6.arpa."), 53)], id="ipv6-cidr-split-at-the-next-nibble"),
        pytest.param("a.org b.org:53", [(("a.org.", "b.org."), 53)], id="several-keys-one-port"),
        pytest.param("a.org:53, b.org:1053", [(("a.org.",), 53), (("b.org.",), 1053)],
                     id="several-ports-make-several-servers"),
        pytest.param("a.org:0", [(("a.org.",), 0)], id="port-zero-picks-a-free-port"),
    ],
)
def test_server_block_keys(keys, expected):
    """Each key becomes (zone, port) pairs, grouped into one server per port."""
    assert servers(f"{keys} {{\n}}\n") == expected


def test_default_port_applies_to_keys_without_one():
    """Keys that name no port take the -dns.port default; keys that do keep theirs."""
    assert servers("a.org b.org:53 {\n}\n", dns_port=1053) == [(("a.org.",), 1053), (("b.org.",), 53)]


def test_same_zone_on_two_ports_is_allowed():
    """One zone may be served on two ports by two blocks."""
    assert servers("a.org:53 {\n}\na.org:1053 {\n}\n") == [(("a.org.",), 53), (("a.org.",), 1053)]


def test_blocks_of_several_ports_share_their_plugin_configs():
    """The servers made from one block's several ports hold the same directive configs."""
    first, second = load_text("a.org:53 b.org:1053 {\n bind 127.0.0.1\n}\n").servers
    assert first.plugins == second.plugins == (("bind", (("127.0.0.1",),)),)
    assert (first.line, second.line) == (1, 1)


@pytest.mark.parametrize(
    "text, line, message",
    [
        pytest.param("tls://.:853 {\n}\n", 1, "transport tls:// is not supported (only dns:// and webhook://)", id="tls"),
        pytest.param("https://.:443 {\n}\n", 1, "transport https:// is not supported", id="https"),
        pytest.param("grpc://.:443 {\n}\n", 1, "transport grpc:// is not supported", id="grpc"),
        pytest.param("quic://.:853 {\n}\n", 1, "transport quic:// is not supported", id="quic"),
        pytest.param(".:abc {\n}\n", 1, "'abc' is not a port number", id="port-not-a-number"),
        pytest.param(".: {\n}\n", 1, "'' is not a port number", id="port-empty"),
        pytest.param(".:65536 {\n}\n", 1, "port 65536 is out of range", id="port-too-big"),
        pytest.param(".:-1 {\n}\n", 1, "port -1 is out of range", id="port-negative"),
        pytest.param("10.0.0.0/33 {\n}\n", 1, "'10.0.0.0/33' is not a CIDR", id="bad-cidr"),
        pytest.param(":53 {\n}\n", 1, "the zone is empty", id="empty-zone"),
        pytest.param(
            "a.org {\n}\n\nb.org {\n}\nA.ORG.:53 {\n}\n",
            6,
            "zone a.org. on port 53 is already served by the block at Corefile:1",
            id="duplicate-zone-and-port-across-blocks",
        ),
        pytest.param("10.0.0.0/24 {\n}\n0.0.10.in-addr.arpa {\n}\n", 3, "zone 0.0.10.in-addr.arpa. on port 53",
                     id="duplicate-reverse-zone"),
        pytest.param("a.org a.org. {\n}\n", 1, "zone a.org. on port 53 is already served", id="duplicate-within-a-block"),
    ],
)
def test_key_errors_name_the_block(text, line, message):
    """A key that names no servable zone:port fails at its block's line, saying why."""
    error = load_error(text)
    assert (error.file, error.line) == ("Corefile", line)
    assert message in error.message


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("# only a comment\n", id="only-comments"),
        pytest.param("(snippet) {\n errors\n}\n", id="only-a-snippet"),
    ],
)
def test_a_corefile_without_server_blocks_is_an_error(text):
    """A Corefile must hold at least one server block."""
    error = load_error(text)
    assert error.file == "Corefile"
    assert "no server blocks" in error.message


# --- directives ----------------------------------------------------------------------------------


def test_unknown_directive_names_it_and_its_line():
    """A directive that is not registered stops start-up, naming it, its file and line."""
    error = load_error(".:53 {\n bind 127.0.0.1\n\n nosuchplugin on\n}\n", file="/etc/coredns/Corefile")
    assert (error.file, error.line) == ("/etc/coredns/Corefile", 4)
    assert error.message.startswith("unknown directive 'nosuchplugin' (supported: ")
    assert "kubernetes" in error.message


def test_unknown_directive_inside_an_imported_file_names_that_file(tmp_path):
    """An unknown directive brought in by import is reported in the file that holds it."""
    (tmp_path / "extra.conf").write_text("\nnosuchplugin\n")
    (tmp_path / "Corefile").write_text(".:53 {\n import extra.conf\n}\n")
    with pytest.raises(CorefileError) as caught:
        load(str(tmp_path / "Corefile"), environ={})
    assert (caught.value.file, caught.value.line) == (str(tmp_path / "extra.conf"), 2)


def test_duplicate_non_repeatable_directive_fails_at_the_second():
    """A directive that may appear once per block fails at its second line."""
    error = load_error(".:53 {\n kubernetes cluster.local\n kubernetes other.local\n}\n")
    assert error.line == 3
    assert "kubernetes: this directive can only appear once per server block" in error.message


def test_the_same_directive_in_two_blocks_is_fine():
    """The once-per-block rule is per server block."""
    config = load_text("a.org {\n kubernetes\n}\nb.org {\n kubernetes\n}\n")
    assert [server.plugin("kubernetes").zones for server in config.servers] == [("a.org.",), ("b.org.",)]


def test_repeatable_directive_collects_every_line():
    """A repeatable directive's config is a tuple of its lines' configs, in order."""
    [server] = load_text(".:53 {\n bind 127.0.0.1\n bind ::1 10.0.0.1\n}\n").servers
    assert server.plugin("bind") == (("127.0.0.1",), ("::1", "10.0.0.1"))
    assert server.bind == ("127.0.0.1", "::1", "10.0.0.1")


def test_plugins_follow_plugin_cfg_order_not_corefile_order():
    """A block's configs are in plugin.cfg order, whatever order the Corefile lists them in."""
    [server] = load_text(".:53 {\n kubernetes cluster.local\n bind 127.0.0.1\n}\n").servers
    assert [name for name, _ in server.plugins] == ["bind", "kubernetes"]


def test_declared_directives_follow_coredns_plugin_cfg_order():
    """Directives CoreDNS also has come in plugin.cfg order, the order a query passes them."""
    known = [name for name in plugin.names() if name in PLUGIN_CFG_ORDER]
    assert known == sorted(known, key=PLUGIN_CFG_ORDER.index)


def test_plugin_cfg_constant_is_coredns_order():
    """PLUGIN_CFG lists CoreDNS's plugin.cfg entries in their order."""
    cfg = list(plugin.PLUGIN_CFG)
    assert [name for name in cfg if name in PLUGIN_CFG_ORDER] == PLUGIN_CFG_ORDER
    assert cfg[0] == "root" and cfg[-1] == "nomad" and len(cfg) == len(set(cfg))


def test_webhook_sits_right_after_kubernetes():
    """The webhook directive, which CoreDNS lacks, is declared to follow kubernetes."""
    names = plugin.names()
    assert names[names.index("kubernetes") + 1] == "webhook"


def test_directive_names_are_unique_and_include_bind_and_kubernetes():
    """Each directive is declared once, bind and kubernetes among them."""
    names = plugin.names()
    assert len(set(names)) == len(names)
    assert {"bind", "kubernetes"} <= set(names)


def test_every_declaration_has_callable_setup_and_build():
    """Each PluginSpec's setup is callable, and so is its build when it has one."""
    for spec in plugin.specs():
        assert callable(spec.setup), spec.name
        assert spec.build is None or callable(spec.build), spec.name


def _all_modules():
    for package in (discovery, webhook):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if not info.name.endswith("__main__"):
                yield importlib.import_module(info.name)


def test_scan_finds_every_declaring_module():
    """The directives found are exactly those of every module that has PLUGINS, imported or not."""
    declared = [spec for module in _all_modules() for spec in getattr(module, "PLUGINS", ())]
    assert sorted(spec.name for spec in declared) == sorted(plugin.names())
    assert all(plugin.spec(spec.name) is spec for spec in declared)


def test_order_of_a_directive_coredns_lacks_follows_its_anchor():
    """A spec with `after` sorts just after that plugin.cfg entry and before the next."""
    extra = plugin.PluginSpec("extra", setup_bind, after="kubernetes")
    kubernetes = plugin.spec("kubernetes")
    loop = plugin.spec("loop")
    assert kubernetes.order < extra.order < loop.order


def test_absent_directive_config_is_none():
    """ServerBlock.plugin returns None for a directive the block does not use."""
    [server] = load_text(".:53 {\n}\n").servers
    assert server.plugin("kubernetes") is None
    assert server.bind == ()


def test_setup_sees_every_zone_of_its_block():
    """A directive's setup context holds all the block's zones, across ports, in key order."""
    config = load_text("b.org:53 a.org:1053 10.0.0.0/24:53 {\n kubernetes\n}\n")
    assert config.servers[0].plugin("kubernetes").zones == ("b.org.", "0.0.10.in-addr.arpa.", "a.org.")


def test_config_records_the_corefile():
    """The Config names its file and lists servers in block order."""
    config = load_text("a.org {\n}\nb.org {\n}\n", file="/etc/coredns/Corefile")
    assert isinstance(config, Config)
    assert config.file == "/etc/coredns/Corefile"
    assert [s.zones for s in config.servers] == [("a.org.",), ("b.org.",)]
    assert all(isinstance(s, ServerBlock) and s.file == "/etc/coredns/Corefile" for s in config.servers)


def test_load_reads_a_corefile_from_disk(tmp_path):
    """load(path) parses and assembles the file, reading {$ENV} from the given environment."""
    path = tmp_path / "Corefile"
    path.write_text("{$ZONE}:{$PORT} {\n bind 127.0.0.1\n}\n")
    config = load(str(path), environ={"ZONE": "example.org", "PORT": "1053"})
    assert config.file == str(path)
    assert [(s.zones, s.port, s.bind) for s in config.servers] == [(("example.org.",), 1053, ("127.0.0.1",))]


def test_load_of_a_missing_file_names_it(tmp_path):
    """load of a path that does not exist is a CorefileError naming the path."""
    missing = str(tmp_path / "Corefile")
    with pytest.raises(CorefileError) as caught:
        load(missing)
    assert caught.value.file == missing


# --- bind ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, expected",
    [
        pytest.param("bind 127.0.0.1", ("127.0.0.1",), id="ipv4"),
        pytest.param("bind ::0001", ("::1",), id="ipv6-canonical"),
        pytest.param("bind 127.0.0.1 ::1", ("127.0.0.1", "::1"), id="several"),
    ],
)
def test_bind_addresses(line, expected):
    """bind lists the addresses to listen on, in canonical form."""
    [server] = load_text(f".:53 {{\n {line}\n}}\n").servers
    assert server.bind == expected


@pytest.mark.parametrize(
    "body, message",
    [
        pytest.param("bind", "bind: expected at least 1 argument, got 0", id="no-address"),
        pytest.param("bind localhost", "bind: 'localhost' is not an IP address", id="not-an-ip"),
        pytest.param("bind 127.0.0.1 {\n }", "bind: takes no block", id="with-a-block"),
    ],
)
def test_bind_errors(body, message):
    """A bind line without addresses, with a non-IP or with a block fails at its line."""
    error = load_error(f".:53 {{\n {body}\n}}\n")
    assert error.line == 2
    assert message in error.message


def test_setup_context_is_frozen():
    """The context handed to setup functions cannot be altered by them."""
    context = SetupContext((".",), "Corefile", 1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        context.zones = ()


# --- webhook:// blocks (Wayfinder's addition) -------------------------------------------

WEBHOOK_BLOCK = """\
webhook://cluster.local {
    kubernetes {
        manifests /tmp
    }
    webhook :8443 {
        tls auto
    }
    ready
}
"""


def test_a_webhook_block_has_the_webhook_transport():
    """webhook://ZONE makes a block that serves the webhook and opens no DNS listener."""
    (server,) = load_text(WEBHOOK_BLOCK).servers
    assert (server.transport, server.zones) == ("webhook", ("cluster.local.",))


def test_ordinary_blocks_have_the_dns_transport():
    """Keys without a scheme, or with dns://, are DNS server blocks."""
    assert [s.transport for s in load_text(".:53 {\n}\ndns://example.org:53 {\n}\n").servers] == ["dns", "dns"]


def test_a_webhook_block_zone_defaults_the_kubernetes_zones():
    """As in any block, a kubernetes directive without zones takes the block's."""
    (server,) = load_text(WEBHOOK_BLOCK).servers
    assert server.plugin("kubernetes").zones == ("cluster.local.",)


@pytest.mark.parametrize(
    "directive, line",
    [("forward . 127.0.0.1", 2), ("cache 30", 2), ("log", 2), ("bind 127.0.0.1", 2)],
    ids=["forward", "cache", "log", "bind"],
)
def test_a_webhook_block_refuses_directives_that_answer_dns(directive, line):
    """DNS directives in a webhook:// block stop start-up at their line: nothing would ever run them."""
    text = WEBHOOK_BLOCK.replace("{\n", "{\n    " + directive + "\n", 1)
    error = load_error(text)
    assert error.line == line and "no DNS listener" in error.message


@pytest.mark.parametrize("missing", ["webhook", "kubernetes"])
def test_a_webhook_block_needs_a_webhook_and_its_cache(missing):
    """Without a webhook, or without the kubernetes cache that feeds it, the block is an error."""
    lines = WEBHOOK_BLOCK.splitlines(keepends=True)
    start = next(i for i, l in enumerate(lines) if i > 0 and l.strip().startswith(missing))
    end = next(i for i in range(start, len(lines)) if lines[i].strip() == "}")
    error = load_error("".join(lines[:start] + lines[end + 1:]))
    assert f"needs a {missing} directive" in error.message


@pytest.mark.parametrize("key", ["webhook://cluster.local:8443", "webhook://10.0.0.0/8", "webhook://"])
def test_a_webhook_key_takes_a_zone_only(key):
    """The webhook's address belongs to the webhook directive, not to the key."""
    assert "takes a zone only" in load_error(WEBHOOK_BLOCK.replace("webhook://cluster.local", key)).message


def test_a_block_cannot_mix_transports():
    """One block's keys are all DNS or all webhook."""
    text = WEBHOOK_BLOCK.replace("webhook://cluster.local", "webhook://cluster.local example.org:53")
    assert "one transport" in load_error(text).message
