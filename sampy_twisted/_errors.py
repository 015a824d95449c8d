# -*- test-case-name: tests.test_encoding -*-
"""
Exceptions and status constants shared by every part of sampy_twisted.

The names and bases follow astropy.samp, so code written for it can catch the
same classes.
"""

from __future__ import annotations

import xmlrpc.client
from typing import Any

SAMP_STATUS_OK = "samp.ok"
SAMP_STATUS_WARNING = "samp.warning"
SAMP_STATUS_ERROR = "samp.error"


class SAMPWarning(UserWarning):
    """
    A SAMP problem worth telling the user about that does not stop the work.
    """


class SAMPHubError(Exception):
    """
    The hub cannot be found or reached: no lockfile, a broken lockfile, a
    refused or reset connection, or a hub request that timed out.
    """


class SAMPClientError(Exception):
    """
    The client cannot do what was asked in its current state, for example
    sending while not registered, or a wait cut short by a disconnection.
    """


class SAMPProxyError(xmlrpc.client.Fault):
    """
    The hub answered a request with an XML-RPC fault.

    :ivar faultCode: the hub's fault code (SAMP gives it no meaning).
    :ivar faultString: the hub's own explanation.
    """

    def __init__(self, faultCode: int, faultString: str, **extra: Any) -> None:
        super().__init__(faultCode, faultString, **extra)

    def __str__(self) -> str:
        return self.faultString


class SAMPCallTimeout(SAMPProxyError):
    """
    No response arrived within the timeout of a ``call_and_wait``.

    :ivar timeout: the timeout that ran out, in seconds.
    """

    def __init__(self, timeout: float, recipient_id: str | None = None) -> None:
        self.timeout = timeout
        self.recipient_id = recipient_id
        text = f"no response within {timeout:g} s"
        if recipient_id is not None:
            text = f"call to {recipient_id}: {text}"
        super().__init__(1, text)
