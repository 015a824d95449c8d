"""
Mutual TLS with the Python API: our hub and two clients, every connection
verified both ways.  Run it where make-certificates.sh wrote its files.
"""

import ssl

from twisted.internet import defer, task

from sampy_twisted import SAMPHubServer, SAMPIntegratedClient, TLSOptions


def tls(name):
    """The TLS settings of one party: its certificate and key, the CA that
    vouches for everyone, and a certificate required from the other side."""
    return TLSOptions(
        cert_file=f"{name}-cert.pem",
        key_file=f"{name}-key.pem",
        ca_certs="ca.pem",
        cert_reqs=ssl.CERT_REQUIRED,
    )


async def main(reactor):
    # The hub serves https; a client without a certificate from ca.pem
    # cannot even connect.  It writes its lockfile (~/.samp) as usual.
    hub = SAMPHubServer(reactor=reactor, tls=tls("hub"))
    await hub.start()
    clients = []
    try:
        for name in ("alice", "bob"):
            settings = tls(name)
            # https=True: the callback server serves TLS with the same
            # certificate, and requires the hub's.
            client = SAMPIntegratedClient(name=name, reactor=reactor, https=True, tls=settings)
            # tls= here: verify the hub and present our certificate to it.
            await client.connect(hub=hub, tls=settings)
            clients.append(client)
        alice, bob = clients

        received = defer.Deferred()

        def on_load(private_key, sender_id, msg_id, mtype, params, extra):
            received.callback(params["url"])
            return {}

        bob.bind_receive_call("table.load.votable", on_load)
        response = await alice.ecall_and_wait(
            bob.get_public_id(), "table.load.votable", "10", url="http://example.org/t.xml"
        )
        print(f"bob loaded {await received}: {response['samp.status']}")
    finally:
        for client in clients:
            await client.disconnect()
        await hub.stop()


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
