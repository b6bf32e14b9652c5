"""The SDK-compatible ``Step`` builder (``ezthrottle`` 1.3.0 method names and defaults).

``Step.to_payload()`` builds exactly the JSON the Python SDK would send for the same calls;
``Step.execute(client)`` runs it against any apidam client:

* PERFORMANCE (default): ``client.submit(payload)``.
* FRUGAL: ``client.execute_local(LocalRequest)`` first (timeout ``local_timeout`` s, default 30);
  2xx → local success (``on_success`` is then executed); a status in ``fallback_on_error``
  (default [429, 500, 502, 503, 504]) or a network error (:class:`LocalRequestError`) → try the
  FRUGAL fallbacks locally (in order, triggers checked locally; ``on_timeout`` always fires), then
  forward the whole step to the dam; any other status → a local failure, not forwarded.

UNIQUE keys are UUID4s drawn from a ``numpy.random.Generator`` (the ``rng`` given to the Step, to
``to_payload``/``execute``, or the client's ``rng`` attribute): the engine never uses global
random state.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import msgspec

from .errors import LocalRequestError, SpecError
from .idempotency import IdempotentStrategy, unique_key
from .spec import JobSpec, parse_job

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "DEFAULT_FALLBACK_ON_ERROR",
    "DamClient",
    "LocalExecutor",
    "LocalRequest",
    "LocalResponse",
    "Step",
    "StepType",
]

DEFAULT_FALLBACK_ON_ERROR = (429, 500, 502, 503, 504)
DEFAULT_LOCAL_TIMEOUT_S = 30


class StepType(enum.Enum):
    FRUGAL = "frugal"
    PERFORMANCE = "performance"


class LocalRequest(msgspec.Struct, frozen=True):
    method: str
    url: str
    headers: dict[str, str]
    body: str | None
    timeout_s: float


class LocalResponse(msgspec.Struct, frozen=True):
    status_code: int
    text: str = ""
    headers: dict[str, str] = msgspec.field(default_factory=dict)


@runtime_checkable
class DamClient(Protocol):
    """Anything that accepts a job payload: the simulated dam, the Ray runtime, a live server."""

    def submit(self, payload: dict[str, Any]) -> dict[str, Any]: ...


@runtime_checkable
class LocalExecutor(Protocol):
    """Runs a FRUGAL step's request from the client; raises LocalRequestError on network errors."""

    def execute_local(self, request: LocalRequest) -> LocalResponse: ...


class Step:
    """Fluent builder for a job step; every setter returns ``self``."""

    def __init__(self, client: Any = None, *, rng: np.random.Generator | None = None) -> None:
        self.client = client
        self.rng = rng
        self._step_type = StepType.PERFORMANCE
        self._url: str | None = None
        self._method = "GET"
        self._headers: dict[str, str] = {}
        self._body: str | None = None
        self._metadata: dict[str, Any] = {}
        self._webhooks: list[dict[str, Any]] = []
        self._webhook_quorum = 1
        self._regions: list[str] | None = None
        self._region_policy = "fallback"
        self._execution_mode = "race"
        self._hedge_delay_ms: int | None = None
        self._retry_policy: dict[str, Any] | None = None
        self._retry_at: int | None = None
        self._idempotent_key: str | None = None
        self._idempotent_strategy = IdempotentStrategy.HASH
        self._fallback_on_error: list[int] = list(DEFAULT_FALLBACK_ON_ERROR)
        self._local_timeout: float = DEFAULT_LOCAL_TIMEOUT_S
        self._fallbacks: list[tuple[Step, dict[str, Any]]] = []
        self._on_success: Step | None = None
        self._on_failure: Step | None = None
        self._on_failure_timeout_ms: int | None = None

    # -- setters (SDK names) -------------------------------------------------------------------
    def type(self, step_type: StepType) -> Step:
        self._step_type = StepType(step_type)
        return self

    def url(self, url: str) -> Step:
        self._url = url
        return self

    def method(self, method: str) -> Step:
        self._method = method.upper()
        return self

    def headers(self, headers: dict[str, str]) -> Step:
        self._headers = headers
        return self

    def body(self, body: str) -> Step:
        self._body = body
        return self

    def metadata(self, metadata: dict[str, Any]) -> Step:
        self._metadata = metadata
        return self

    def webhooks(self, webhooks: list[dict[str, Any]]) -> Step:
        self._webhooks = webhooks
        return self

    def webhook_quorum(self, quorum: int) -> Step:
        self._webhook_quorum = quorum
        return self

    def regions(self, regions: list[str]) -> Step:
        self._regions = regions
        return self

    def region_policy(self, policy: str) -> Step:
        self._region_policy = policy
        return self

    def execution_mode(self, mode: str) -> Step:
        self._execution_mode = mode
        return self

    def hedge_delay_ms(self, delay_ms: int) -> Step:
        """apidam's addition: the delay before a hedge starts the next region."""
        self._hedge_delay_ms = delay_ms
        return self

    def retry_policy(self, policy: dict[str, Any]) -> Step:
        self._retry_policy = policy
        return self

    def retry_at(self, timestamp_ms: int) -> Step:
        self._retry_at = timestamp_ms
        return self

    def idempotent_key(self, key: str) -> Step:
        self._idempotent_key = key
        return self

    def idempotent_strategy(self, strategy: IdempotentStrategy) -> Step:
        self._idempotent_strategy = IdempotentStrategy(strategy)
        return self

    def fallback_on_error(self, codes: list[int]) -> Step:
        self._fallback_on_error = list(codes)
        return self

    def local_timeout(self, timeout: float) -> Step:
        self._local_timeout = timeout
        return self

    def fallback(self, step: Step, trigger_on_error: list[int] | None = None,
                 trigger_on_timeout: int | None = None) -> Step:
        trigger: dict[str, Any] = {}
        if trigger_on_error:
            trigger = {"type": "on_error", "codes": list(trigger_on_error)}
        elif trigger_on_timeout:
            trigger = {"type": "on_timeout", "timeout_ms": trigger_on_timeout}
        self._fallbacks.append((step, trigger))
        return self

    def on_success(self, step: Step) -> Step:
        self._on_success = step
        return self

    def on_failure(self, step: Step, timeout_ms: int | None = None) -> Step:
        self._on_failure = step
        if timeout_ms:
            self._on_failure_timeout_ms = timeout_ms
        return self

    # -- payloads -------------------------------------------------------------------------------
    @property
    def step_type(self) -> StepType:
        return self._step_type

    def to_payload(self, rng: np.random.Generator | None = None) -> dict[str, Any]:
        """The JSON the SDK sends for this step (keys present only when the SDK sends them)."""
        if not self._url:
            raise SpecError("$.url", "required field is missing (call .url())")
        p: dict[str, Any] = {"url": self._url, "method": self._method}
        if self._headers:
            p["headers"] = self._headers
        if self._body:
            p["body"] = self._body
        if self._metadata:
            p["metadata"] = self._metadata
        if self._webhooks:
            p["webhooks"] = self._webhooks
        if self._webhook_quorum != 1:
            p["webhook_quorum"] = self._webhook_quorum
        if self._regions:
            p["regions"] = self._regions
        if self._region_policy != "fallback":
            p["region_policy"] = self._region_policy
        if self._execution_mode != "race":
            p["execution_mode"] = self._execution_mode
        if self._hedge_delay_ms is not None:
            p["hedge_delay_ms"] = self._hedge_delay_ms
        if self._retry_policy:
            p["retry_policy"] = self._retry_policy
        if self._retry_at is not None:
            p["retry_at"] = self._retry_at
        if self._idempotent_key:
            p["idempotent_key"] = self._idempotent_key
        elif self._idempotent_strategy is IdempotentStrategy.UNIQUE:
            gen = rng or self.rng or getattr(self.client, "rng", None)
            if gen is None:
                raise ValueError("IdempotentStrategy.UNIQUE needs an rng: pass "
                                 "Step(rng=numpy.random.default_rng(seed)) or to_payload(rng=...)")
            p["idempotent_key"] = unique_key(gen)
        if self._fallbacks:
            p["fallback_job"] = self._fallback_chain(rng)
        if self._on_success is not None:
            p["on_success"] = self._on_success.to_payload(rng)
        if self._on_failure is not None:
            p["on_failure"] = self._on_failure.to_payload(rng)
        if self._on_failure_timeout_ms is not None:
            p["on_failure_timeout_ms"] = self._on_failure_timeout_ms
        return p

    def _fallback_chain(self, rng: np.random.Generator | None) -> dict[str, Any]:
        chain: dict[str, Any] | None = None
        for step, trigger in reversed(self._fallbacks):
            node = step.to_payload(rng)
            node["trigger"] = dict(trigger)
            if chain is not None:
                node["fallback_job"] = chain
            chain = node
        assert chain is not None
        return chain

    def to_spec(self, customer_id: str, rng: np.random.Generator | None = None) -> JobSpec:
        return parse_job(self.to_payload(rng), customer_id)

    # -- execution -----------------------------------------------------------------------------
    def execute(self, client: Any = None, rng: np.random.Generator | None = None) -> dict[str, Any]:
        client = client if client is not None else self.client
        if client is None:
            raise ValueError("a client is required: pass it to execute() or to Step(client)")
        if self._step_type is StepType.FRUGAL:
            return self._execute_frugal(client, rng)
        return client.submit(self.to_payload(rng))

    def _local(self, client: Any) -> LocalResponse:
        if not self._url:
            raise SpecError("$.url", "required field is missing (call .url())")
        return client.execute_local(LocalRequest(self._method, self._url, dict(self._headers),
                                                 self._body, float(self._local_timeout)))

    def _execute_frugal(self, client: Any, rng: np.random.Generator | None) -> dict[str, Any]:
        try:
            resp = self._local(client)
        except LocalRequestError:
            return self._try_fallbacks(client, None, rng) or client.submit(self.to_payload(rng))
        if 200 <= resp.status_code < 300:
            if self._on_success is not None:
                self._on_success.execute(client, rng)
            return {"status": "success", "executed_locally": True,
                    "status_code": resp.status_code, "response": resp.text}
        if resp.status_code in self._fallback_on_error:
            return (self._try_fallbacks(client, resp.status_code, rng)
                    or client.submit(self.to_payload(rng)))
        return {"status": "failed", "executed_locally": True, "status_code": resp.status_code,
                "error": f"Request failed: {resp.status_code}"}

    def _try_fallbacks(self, client: Any, status: int | None,
                       rng: np.random.Generator | None) -> dict[str, Any] | None:
        """Run matching FRUGAL fallbacks locally; the first local success wins.

        A fallback is only *tried locally* here, never forwarded on its own: forwarding is the
        parent's job (it carries the whole fallback chain to the dam).
        """
        for step, trigger in self._fallbacks:
            kind = trigger.get("type")
            if kind == "on_error" and (status is None or status not in trigger.get("codes", ())):
                continue
            if step._step_type is not StepType.FRUGAL:
                continue
            try:
                resp = step._local(client)
            except LocalRequestError:
                continue
            if 200 <= resp.status_code < 300:
                if step._on_success is not None:
                    step._on_success.execute(client, rng)
                return {"status": "success", "executed_locally": True,
                        "status_code": resp.status_code, "response": resp.text}
        return None
