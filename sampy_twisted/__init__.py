"""
sampy_twisted: SAMP (the IVOA Simple Application Messaging Protocol) for
Twisted.

Everything that talks to a hub returns a
:class:`~twisted.internet.defer.Deferred`; the names, arguments and defaults
follow astropy.samp.
"""

import typing as _typing

if _typing.TYPE_CHECKING:
    from ._client import SAMPClient
    from ._discovery import (
        default_lockfile_path,
        get_hub_params,
        get_running_hubs,
        lockfile_location,
        parse_lockfile,
        read_lockfile,
    )
    from ._encoding import (
        check_samp_value,
        decode_boolean,
        decode_float,
        decode_int,
        encode_boolean,
        encode_float,
        encode_int,
        error_response,
        make_message,
    )
    from ._errors import (
        SAMP_STATUS_ERROR,
        SAMP_STATUS_OK,
        SAMP_STATUS_WARNING,
        SAMPCallTimeout,
        SAMPClientError,
        SAMPHubError,
        SAMPProxyError,
        SAMPWarning,
    )
    from ._hub import SAMPHubServer, start_hub
    from ._hub_proxy import SAMPHubProxy
    from ._integrated import SAMPIntegratedClient
    from ._service import SAMPClientService
    from ._tls import TLSOptions
    from ._tracker import ClientTracker, TrackedClient
    from ._webprofile import WEB_SAFE_MTYPES, WebConsentRequest

__version__ = "0.1.0"

# Every name is imported from its module when first asked for, so that
# ``import sampy_twisted`` costs next to nothing and a program loads only
# what it uses: the hub, the Web Profile and TLS only when used, the
# client without Twisted's application framework unless it asks for
# SAMPClientService.  (Twisted's HTTP client, which the client modules
# use, itself imports pyOpenSSL.)
_LAZY_MODULES = {
    "._client": ["SAMPClient"],
    "._discovery": [
        "default_lockfile_path",
        "get_hub_params",
        "get_running_hubs",
        "lockfile_location",
        "parse_lockfile",
        "read_lockfile",
    ],
    "._encoding": [
        "check_samp_value",
        "decode_boolean",
        "decode_float",
        "decode_int",
        "encode_boolean",
        "encode_float",
        "encode_int",
        "error_response",
        "make_message",
    ],
    "._errors": [
        "SAMP_STATUS_ERROR",
        "SAMP_STATUS_OK",
        "SAMP_STATUS_WARNING",
        "SAMPCallTimeout",
        "SAMPClientError",
        "SAMPHubError",
        "SAMPProxyError",
        "SAMPWarning",
    ],
    "._hub": ["SAMPHubServer", "start_hub"],
    "._hub_proxy": ["SAMPHubProxy"],
    "._integrated": ["SAMPIntegratedClient"],
    "._service": ["SAMPClientService"],
    "._tls": ["TLSOptions"],
    "._tracker": ["ClientTracker", "TrackedClient"],
    "._webprofile": ["WEB_SAFE_MTYPES", "WebConsentRequest"],
}
_LAZY = {name: module for module, names in _LAZY_MODULES.items() for name in names}

__all__ = [
    "ClientTracker",
    "SAMPCallTimeout",
    "SAMPClient",
    "SAMPClientService",
    "SAMPClientError",
    "SAMPHubError",
    "SAMPHubProxy",
    "SAMPHubServer",
    "SAMPIntegratedClient",
    "SAMPProxyError",
    "SAMPWarning",
    "SAMP_STATUS_ERROR",
    "SAMP_STATUS_OK",
    "SAMP_STATUS_WARNING",
    "TLSOptions",
    "TrackedClient",
    "WEB_SAFE_MTYPES",
    "WebConsentRequest",
    "check_samp_value",
    "decode_boolean",
    "decode_float",
    "decode_int",
    "default_lockfile_path",
    "encode_boolean",
    "encode_float",
    "encode_int",
    "error_response",
    "get_hub_params",
    "get_running_hubs",
    "lockfile_location",
    "make_message",
    "parse_lockfile",
    "read_lockfile",
    "start_hub",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
