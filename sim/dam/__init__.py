"""The dam's actors, one module each: the Gateway (intake), the Regions (job machines), the
LimiterActors (one per target domain) and the webhook Dispatchers (one per region)."""

from .dispatcher import Dispatcher
from .gateway import Gateway
from .limiter import LimiterActor
from .region import Region

__all__ = ["Dispatcher", "Gateway", "LimiterActor", "Region"]
