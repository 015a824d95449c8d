"""
A client that stays registered while hubs come and go, printing every
``table.*`` notification it is sent, until Ctrl-C or SIGTERM.

Run it as ``python watch_tables.py``.
"""

from twisted.internet import defer, task

from sampy_twisted import SAMPClientService, SAMPIntegratedClient


def show(private_key, sender_id, mtype, params, extra):
    print(f"{sender_id} sent {mtype}: {params}", flush=True)


async def main(reactor):
    client = SAMPIntegratedClient(name="watcher", reactor=reactor)
    client.bind_receive_notification("table.*", show)
    service = SAMPClientService(client, hub="running", reactor=reactor)
    service.startService()
    # On Ctrl-C: unregister and close the port before the reactor stops.
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    await service.when_registered()
    print("registered as", client.get_public_id(), flush=True)
    await defer.Deferred()  # run until interrupted


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
