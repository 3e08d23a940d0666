"""Zone transfers over real sockets: `dig axfr`, dnspython's dns.query.xfr, and the rest of the
server answering while a large transfer streams to a client that reads slowly."""

from __future__ import annotations

import socket
import struct
import subprocess
import textwrap

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.xfr
import dns.zone
import pytest
import pytest_twisted
from twisted.internet import threads

from discovery.cache.objects import Service, ServicePort
from tests.integration.dnsserver import EXAMPLES, TIMEOUT, addresses, read_frame


def corefile(to: str = "*") -> str:
    return textwrap.dedent(f"""\
        .:0 {{
            bind 127.0.0.1
            transfer {{
                to {to}
            }}
            kubernetes cluster.local {{
                manifests {EXAMPLES}
            }}
            k8s_external example.org
        }}
        """)


def dig(port: int, *args: str) -> list[str]:
    output = subprocess.run(
        ["dig", "+noall", "+answer", "@127.0.0.1", "-p", str(port), *args],
        capture_output=True, text=True, timeout=TIMEOUT, check=True,
    )
    return [" ".join(line.split()) for line in output.stdout.splitlines() if line.strip()]


def xfr(port: int, zone: str, **kwargs) -> list:
    return list(dns.query.xfr("127.0.0.1", zone, port=port, timeout=TIMEOUT, lifetime=TIMEOUT, **kwargs))


@pytest_twisted.ensureDeferred
async def test_dig_axfr_lists_the_cluster_zone(dns_server):
    """dig axfr cluster.local: SOA first and last, the demo's Services in between."""
    server = await dns_server(corefile())
    rows = await threads.deferToThread(dig, server.port, "cluster.local", "AXFR")
    assert rows[0].split()[3] == "SOA" and rows[-1].split()[3] == "SOA"
    assert "frontend-svc.default.svc.cluster.local. 5 IN A 10.96.120.34" in rows
    assert "_http._tcp.frontend-svc.default.svc.cluster.local. 5 IN SRV 0 100 80 frontend-svc.default.svc.cluster.local." in rows


@pytest_twisted.ensureDeferred
async def test_dnspython_xfr_builds_the_external_zone(dns_server):
    """dns.query.xfr of example.org through k8s_external: a zone holding the LoadBalancer's address."""
    server = await dns_server(corefile())
    messages = await threads.deferToThread(xfr, server.port, "example.org.")
    zone = dns.zone.from_xfr(iter(messages))
    assert [rdata.address for rdata in zone.find_rdataset("shop.default", "A")] == ["203.0.113.10"]
    assert [rdata.address for rdata in zone.find_rdataset("status-page.default", "A")] == ["198.51.100.20"]


@pytest_twisted.ensureDeferred
async def test_transfer_to_an_unlisted_address_is_refused(dns_server):
    """`to 192.0.2.1`: a client at 127.0.0.1 gets REFUSED."""
    server = await dns_server(corefile("192.0.2.1"))
    with pytest.raises(dns.xfr.TransferError) as raised:
        await threads.deferToThread(xfr, server.port, "cluster.local.")
    assert raised.value.rcode == dns.rcode.REFUSED


@pytest_twisted.ensureDeferred
async def test_axfr_over_udp_is_refused(dns_server):
    """A transfer over UDP is REFUSED, as CoreDNS answers it."""
    server = await dns_server(corefile())
    response = await server.query("cluster.local.", "AXFR")
    assert response.rcode() == dns.rcode.REFUSED


@pytest_twisted.ensureDeferred
async def test_ixfr_with_the_current_serial_is_up_to_date(dns_server):
    """IXFR at the zone's serial: one SOA, which dnspython reads as nothing to transfer."""
    server = await dns_server(corefile())
    soa = (await server.query("cluster.local.", "SOA")).answer[0][0]
    messages = await threads.deferToThread(xfr, server.port, "cluster.local.",
                                           rdtype=dns.rdatatype.IXFR, serial=soa.serial)
    assert [rrset.rdtype for message in messages for rrset in message.answer] == [dns.rdatatype.SOA]


@pytest_twisted.ensureDeferred
async def test_ixfr_with_an_old_serial_is_answered_as_axfr(dns_server):
    """IXFR from an older serial: the whole zone, as an AXFR (RFC 1995 section 4)."""
    server = await dns_server(corefile())
    soa = (await server.query("cluster.local.", "SOA")).answer[0][0]
    messages = await threads.deferToThread(xfr, server.port, "cluster.local.",
                                           rdtype=dns.rdatatype.IXFR, serial=soa.serial - 1)
    names = {rrset.name.to_text() for message in messages for rrset in message.answer}
    assert "frontend-svc.default.svc" in names  # relative to the zone, as dnspython reads it


def start_slow_transfer(port: int) -> tuple[socket.socket, dns.message.Message]:
    """An AXFR from a client with a tiny receive buffer that reads the first message only."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", port))
    query = dns.message.make_query("cluster.local.", "AXFR").to_wire()
    sock.sendall(struct.pack("!H", len(query)) + query)
    return sock, dns.message.from_wire(read_frame(sock))


def finish_transfer(sock: socket.socket, first: dns.message.Message) -> list[dns.message.Message]:
    messages = [first]
    soas = sum(rrset.rdtype == dns.rdatatype.SOA for rrset in first.answer)
    while soas < 2:
        message = dns.message.from_wire(read_frame(sock))
        soas += sum(rrset.rdtype == dns.rdatatype.SOA for rrset in message.answer)
        messages.append(message)
    sock.close()
    return messages


@pytest_twisted.ensureDeferred
async def test_queries_are_answered_while_a_large_transfer_streams(dns_server):
    """While a 3,000-Service transfer waits on a slow client, other queries are answered; then it completes."""
    server = await dns_server(corefile())
    for i in range(3000):
        server.store.put(Service("default", f"bulk-{i:04d}", cluster_ips=(f"10.97.{i // 250}.{i % 250 + 1}",),
                                 ports=(ServicePort("http", "TCP", 80),)))
    sock, first = await threads.deferToThread(start_slow_transfer, server.port)
    (connection,) = server.dns._tcp_connections
    assert connection.streaming is not None and not connection.streaming.called
    answered = await server.query("frontend-svc.default.svc.cluster.local.", "A")
    assert addresses(answered) == ["10.96.120.34"]
    assert not connection.streaming.called, "the transfer finished before the slow client read it"
    messages = await threads.deferToThread(finish_transfer, sock, first)
    records = sum(len(rrset) for message in messages for rrset in message.answer)
    assert len(messages) > 1 and records > 3000 * 3
