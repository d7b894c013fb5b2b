"""Exotel's voice API, as voicebus uses it: accounts, an async client, typed answers and
one exception tree. Only the executor and the status poller talk to Exotel, through this::

    settings = ExotelSettings()                      # EXOTEL_* environment variables
    async with make_http_client(settings) as http:
        client = ExotelClient(settings.accounts()["default"], http, throttle=..., observer=...)
        placed = await client.place_call(V1ConnectRequest({"From": ..., "To": ..., ...}))
"""

from services.exotel.accounts import (
    DEFAULT_ACCOUNT,
    ApiFamily,
    ApiVersion,
    ExotelAccount,
    ExotelConfigError,
    ExotelSettings,
    Region,
    load_accounts_file,
)
from services.exotel.client import ExotelClient, RequestObserver, Throttle
from services.exotel.errors import (
    ExotelAuthError,
    ExotelError,
    ExotelInvalidResponse,
    ExotelNotFound,
    ExotelPermanentError,
    ExotelRateLimited,
    ExotelRejected,
    ExotelTimeout,
    ExotelTransientError,
    ExotelUnavailable,
)
from services.exotel.http import make_http_client
from services.exotel.models import (
    ActiveLeg,
    CallDetails,
    CompletedCallLeg,
    Leg,
    LegDetail,
    PlacedCall,
    V3CallLegs,
    V3Leg,
)

__all__ = [
    "DEFAULT_ACCOUNT",
    "ActiveLeg",
    "ApiFamily",
    "ApiVersion",
    "CallDetails",
    "CompletedCallLeg",
    "ExotelAccount",
    "ExotelAuthError",
    "ExotelClient",
    "ExotelConfigError",
    "ExotelError",
    "ExotelInvalidResponse",
    "ExotelNotFound",
    "ExotelPermanentError",
    "ExotelRateLimited",
    "ExotelRejected",
    "ExotelSettings",
    "ExotelTimeout",
    "ExotelTransientError",
    "ExotelUnavailable",
    "Leg",
    "LegDetail",
    "PlacedCall",
    "Region",
    "RequestObserver",
    "Throttle",
    "V3CallLegs",
    "V3Leg",
    "load_accounts_file",
    "make_http_client",
]
