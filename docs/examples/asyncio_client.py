"""
sampy_twisted from asyncio code: Twisted's asyncio reactor runs the loop,
and each Deferred becomes an asyncio future with ``asFuture``.

Run it with a hub running: ``python asyncio_client.py``.
"""

import asyncio

from twisted.internet import asyncioreactor

asyncioreactor.install()  # before anything imports twisted.internet.reactor

from twisted.internet import defer, task  # noqa: E402

from sampy_twisted import SAMPIntegratedClient  # noqa: E402


async def amain(reactor):
    loop = asyncio.get_running_loop()
    client = SAMPIntegratedClient(name="asyncio-demo", reactor=reactor)
    await client.connect().asFuture(loop)
    try:
        await asyncio.sleep(0.1)  # asyncio awaitables work here
        print("registered clients:", await client.get_registered_clients().asFuture(loop))
    finally:
        await client.disconnect().asFuture(loop)


if __name__ == "__main__":
    task.react(lambda reactor: defer.Deferred.fromFuture(asyncio.ensure_future(amain(reactor))))
