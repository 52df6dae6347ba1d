"""The route table is the one list of resources: Flask serves exactly it, the capabilities
describe exactly it, and a method it does not list is 405 with Allow (RFC 9110 §15.5.6)."""

from __future__ import annotations

import re

import pytest

from dicomweb.routes import ROUTES
from dicomweb.service import PREFIX
from dicomweb.transactions.capabilities import tree

UID = {"study": "1.2.3", "series": "1.2.4", "instance": "1.2.5", "frames": "1", "path": "00282000"}


def concrete(rule: str) -> str:
    return PREFIX + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: UID[m.group(1)], rule)


def methods_of(rule: str) -> set[str]:
    return {route.method for route in ROUTES if route.rule == rule}


def test_flask_serves_the_table(empty_web) -> None:
    archive, client = empty_web
    rules = {
        (rule.rule, method)
        for rule in client.application.url_map.iter_rules()
        if rule.rule.startswith(PREFIX)
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    assert rules == {(PREFIX + route.rule, route.method) for route in ROUTES}


def test_the_capabilities_name_every_route() -> None:
    def ids(resources) -> set[str]:  # type: ignore[no-untyped-def]
        found = set()
        for resource in resources:
            found |= {method.id for method in resource.methods}
            found |= ids(resource.children)
        return found

    assert ids(tree(ROUTES)) == {route.id for route in ROUTES}
    assert len({route.id for route in ROUTES}) == len(ROUTES)


@pytest.mark.parametrize(
    "method,rule",
    [
        ("DELETE", "/studies"),
        ("POST", "/studies/<study>/series/<series>"),
        ("PUT", "/studies/<study>/series/<series>/instances/<instance>/frames/<frames>"),
        ("POST", "/series"),
    ],
)
def test_other_methods_are_405_with_allow(empty_web, method: str, rule: str) -> None:
    """Before: 405 without an Allow header."""
    _, client = empty_web
    response = client.open(concrete(rule), method=method)
    assert response.status_code == 405
    allowed = {name.strip() for name in response.headers["Allow"].split(",")}
    assert allowed == methods_of(rule) | {"HEAD", "OPTIONS"}
    assert method in response.json["error"] and response.json["status"] == 405


def test_options_describes_the_resource_with_its_methods(empty_web) -> None:
    _, client = empty_web
    response = client.options(PREFIX + "/studies", headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert set(response.headers["Allow"].split(", ")) == methods_of("/studies") | {"OPTIONS"}
    frames = client.options(
        concrete("/studies/<study>/series/<series>/instances/<instance>/frames/<frames>")
    )
    assert frames.status_code == 200 and b"RetrieveFrames" in frames.data
