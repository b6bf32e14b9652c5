"""ForwardRequest / ForwardToEZThrottle / execute_with_forwarding / auto_forward."""

import pytest

from engine import (
    ClientError,
    ForwardRequest,
    ForwardToEZThrottle,
    auto_forward,
    execute_with_forwarding,
    parse_job,
)


class Client:
    def __init__(self):
        self.submitted = []

    def submit(self, payload):
        parse_job(payload, "cust")  # every forwarded payload is a valid job
        self.submitted.append(payload)
        return {"job_id": "job_1_1", "status": "queued"}


def test_plain_result_passes_through():
    c = Client()
    assert execute_with_forwarding(c, lambda x: x * 2, 21) == 42 and c.submitted == []


def test_raised_forward_is_submitted():
    c = Client()

    def legacy(order_id):
        raise ForwardToEZThrottle(url="https://api.stripe.com/charges", method="post",
                                  body='{"a":1}', idempotent_key=f"order_{order_id}",
                                  metadata={"order_id": order_id},
                                  webhooks=[{"url": "https://app.com/hook"}])

    assert execute_with_forwarding(c, legacy, "7") == {"job_id": "job_1_1", "status": "queued"}
    assert c.submitted == [{"url": "https://api.stripe.com/charges", "method": "POST",
                            "body": '{"a":1}', "metadata": {"order_id": "7"},
                            "webhooks": [{"url": "https://app.com/hook"}],
                            "idempotent_key": "order_7"}]


def test_returned_forward_request_is_submitted():
    c = Client()
    r = execute_with_forwarding(c, lambda: ForwardRequest(url="https://a.com", regions=["iad"]))
    assert r["status"] == "queued"
    assert c.submitted == [{"url": "https://a.com", "method": "GET", "regions": ["iad"]}]


def test_auto_forward_decorator_keeps_signature_and_forwards():
    c = Client()

    @auto_forward(c)
    def process(x):
        """Doc."""
        if x < 0:
            raise ForwardToEZThrottle(url="https://a.com")
        return x

    assert process.__name__ == "process" and process.__doc__ == "Doc."
    assert process(3) == 3 and c.submitted == []
    assert process(-1)["job_id"] == "job_1_1" and len(c.submitted) == 1


def test_other_exceptions_propagate_and_missing_url_is_clear():
    c = Client()
    with pytest.raises(KeyError):
        execute_with_forwarding(c, lambda: {}["x"])
    with pytest.raises(ClientError, match="url"):
        execute_with_forwarding(c, lambda: (_ for _ in ()).throw(ForwardToEZThrottle()))


def test_forward_error_is_a_client_error_with_sdk_defaults():
    e = ForwardToEZThrottle(url="https://a.com")
    assert isinstance(e, ClientError) and str(e) == "Forwarding to EZThrottle"
    assert e.fallback_on_error == [429, 500, 502, 503, 504] and e.method == "GET"
