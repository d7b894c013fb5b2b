"""Every Exotel request voicebus sends with an effect, built from its command.

* :mod:`.connect`: ``call.connect`` -> v1 connect form, v2 or v3 JSON body;
* :mod:`.legs`: ``lwb.action`` / ``leg.hangup`` -> the LWB legs API's forms (create a
  monitor leg, upgrade it, hang a leg up);
* :mod:`.callbacks`: the status-callback URL each of them carries.

Pure functions: no I/O. Field names are Exotel's, from :mod:`services.exotel.fields`;
options an API does not offer are refused with the field named, never dropped silently.
"""

from services.executor.mapping.callbacks import CallbackContentType, CallbackTarget

__all__ = ["CallbackContentType", "CallbackTarget"]
