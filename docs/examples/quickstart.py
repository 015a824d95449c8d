"""
Send a table to a SAMP application, then ping it.

Usage: ``python quickstart.py [target [votable-url]]`` with a hub running
(TOPCAT has one built in).  The hub is found through ``SAMP_HUB`` or
``~/.samp``.  Without a target, the table goes to the first client that
loads tables (subscribes to ``table.load.votable``).
"""

import sys

from twisted.internet import defer, task

from sampy_twisted import SAMPClientError, SAMPHubError, SAMPIntegratedClient, SAMPProxyError

VOTABLE_URL = "https://vizier.cds.unistra.fr/viz-bin/votable?-source=I/239/hip_main&-out.max=20"
LOAD_TABLE = "table.load.votable"


async def choose_target(client, target):
    """The id of the client named *target*, or of one that loads tables."""
    if target is not None:
        return await client.find_client(target), f"named {target!r}"
    loaders = sorted(await client.get_subscribed_clients(LOAD_TABLE))
    if not loaders:
        raise SAMPClientError(
            f"no registered application loads tables ({LOAD_TABLE}): start TOPCAT or Aladin, "
            "or name a client to send to"
        )
    return loaders[0], f"the first client subscribed to {LOAD_TABLE}"


async def main(reactor, target=None, votable_url=VOTABLE_URL):
    client = SAMPIntegratedClient(name="quickstart", reactor=reactor)
    await client.connect()
    try:
        target_id, why = await choose_target(client, target)
        name = (await client.get_metadata(target_id)).get("samp.name", target_id)
        await client.enotify(target_id, LOAD_TABLE, url=votable_url, name="quickstart table")
        print(f"Sent {LOAD_TABLE} to {name} ({target_id}), {why}")
        response = await client.ecall_and_wait(target_id, "samp.app.ping", "10")
        print(f"{name} ({target_id}) answered samp.app.ping: {response['samp.status']}")
    finally:
        await client.disconnect()


def run(reactor, *argv):
    """Run ``main``; what the user can fix is one line on stderr, not a
    traceback."""

    def explain(failure):
        failure.trap(SAMPHubError, SAMPClientError, SAMPProxyError)
        hint = " (start TOPCAT, Aladin or another hub first)" if failure.check(SAMPHubError) else ""
        print(f"quickstart: {failure.getErrorMessage()}{hint}", file=sys.stderr)
        raise SystemExit(1)

    return defer.ensureDeferred(main(reactor, *argv)).addErrback(explain)


if __name__ == "__main__":
    task.react(run, sys.argv[1:3])
