"""
A receiver that runs until stopped: print every table sent to it.

Usage: ``python receiver.py [name]`` with a hub running; stop it with Ctrl-C
(or ``kill``).  The client unregisters on its way out, so the hub and the
other applications forget it at once.
"""

import sys

from twisted.internet import defer, task

from sampy_twisted import SAMPIntegratedClient


def table_received(private_key, sender_id, msg_id, mtype, params, extra):
    print(f"{mtype} from {sender_id}: {params.get('name', '')} {params.get('url')}", flush=True)
    return {}  # a call is answered samp.ok with an empty result


async def main(reactor, name="receiver"):
    client = SAMPIntegratedClient(name=name, reactor=reactor)
    client.bind_receive_message("table.load.votable", table_received)
    await client.connect()
    print(f"Registered as {client.get_public_id()}; press Ctrl-C to stop", flush=True)
    # Wait for as long as the connection lasts: Ctrl-C or SIGTERM stops the
    # reactor, and the client unregisters before it stops.  A hub that goes
    # away (even killed without a word) ends the wait within seconds.
    reason = await client.when_disconnected()
    print(f"Disconnected: {reason}", flush=True)


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, *sys.argv[1:2])))
