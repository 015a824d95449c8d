"""
Send a table to a SAMP application, then ping it.

Usage: ``python quickstart.py [target [votable-url]]`` with a hub running
(TOPCAT has one built in).  The hub is found through ``SAMP_HUB`` or
``~/.samp``.
"""

import sys

from twisted.internet import defer, task

from sampy_twisted import SAMPIntegratedClient

VOTABLE_URL = "https://vizier.cds.unistra.fr/viz-bin/votable?-source=I/239/hip_main&-out.max=20"


async def main(reactor, target="topcat", votable_url=VOTABLE_URL):
    client = SAMPIntegratedClient(name="quickstart", reactor=reactor)
    await client.connect()
    try:
        target_id = await client.find_client(target)
        await client.enotify(target_id, "table.load.votable", url=votable_url, name="quickstart table")
        response = await client.ecall_and_wait(target_id, "samp.app.ping", "10")
        print(f"{target} ({target_id}) answered samp.app.ping: {response['samp.status']}")
    finally:
        await client.disconnect()


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, *sys.argv[1:3])))
