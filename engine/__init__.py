"""apidam's reference engine: the dam's rules as pure, deterministic, sans-IO state machines.

Time is an ``int`` of microseconds passed in; randomness comes from a ``numpy.random.Generator``
passed in. Nothing here reads a clock, opens a socket, starts a thread or touches global random
state.
"""

from . import billing, errors, forwarding, idempotency, signing, spec, step
from .billing import (
    TIERS,
    BillingAccount,
    DiyCostModel,
    Tier,
    cheapest_tier,
    month_of,
    monthly_cost,
)
from .errors import (
    ApidamError,
    BillingError,
    CapReached,
    ClientError,
    LocalRequestError,
    SecretError,
    SpecError,
    WebhookVerificationError,
)
from .forwarding import ForwardRequest, ForwardToEZThrottle, auto_forward, execute_with_forwarding
from .idempotency import (
    DedupeTable,
    IdempotentStrategy,
    SubmitOutcome,
    derive_key,
    hash_key,
    unique_key,
)
from .signing import (
    SIGNATURE_HEADER,
    SecretStore,
    mask_secret,
    sign_webhook,
    try_verify_with_secrets,
    verify_webhook_signature,
    verify_webhook_signature_strict,
)
from .spec import JobSpec, RetryPolicy, Trigger, WebhookSpec, domain_of, parse_job
from .step import DamClient, LocalExecutor, LocalRequest, LocalResponse, Step, StepType

__all__ = [
    "SIGNATURE_HEADER",
    "TIERS",
    "ApidamError",
    "BillingAccount",
    "BillingError",
    "CapReached",
    "ClientError",
    "DamClient",
    "DedupeTable",
    "DiyCostModel",
    "ForwardRequest",
    "ForwardToEZThrottle",
    "IdempotentStrategy",
    "JobSpec",
    "LocalExecutor",
    "LocalRequest",
    "LocalRequestError",
    "LocalResponse",
    "RetryPolicy",
    "SecretError",
    "SecretStore",
    "SpecError",
    "Step",
    "StepType",
    "SubmitOutcome",
    "Tier",
    "Trigger",
    "WebhookSpec",
    "WebhookVerificationError",
    "auto_forward",
    "billing",
    "cheapest_tier",
    "derive_key",
    "domain_of",
    "errors",
    "execute_with_forwarding",
    "forwarding",
    "hash_key",
    "idempotency",
    "mask_secret",
    "month_of",
    "monthly_cost",
    "parse_job",
    "sign_webhook",
    "signing",
    "spec",
    "step",
    "try_verify_with_secrets",
    "unique_key",
    "verify_webhook_signature",
    "verify_webhook_signature_strict",
]
