"""
A SAMP hub inside a Twisted program, serving until Ctrl-C or SIGTERM.

Run it as ``python run_hub.py /tmp/samp1``; clients then find the hub with
``SAMP_HUB=std-lockurl:file:///tmp/samp1``.
"""

import sys

from twisted.internet import defer, task

from sampy_twisted import start_hub


async def main(reactor, lockfile):
    hub = await start_hub(reactor, lockfile=lockfile, label="test hub")
    print("hub at", hub.url, "lockfile", hub.lockfile, flush=True)
    # On Ctrl-C: tell the clients and remove the lockfile first.
    reactor.addSystemEventTrigger("before", "shutdown", hub.stop)
    await defer.Deferred()  # serve until interrupted


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, sys.argv[1])))
