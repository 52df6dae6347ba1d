"""The Flask application: the route table under /dicomweb, Retrieve Capabilities on OPTIONS,
the one error mapping, gzip."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from flask import Blueprint, Flask, Response, request

from dicomweb import auditing, errors
from dicomweb.http import accesslog, compression
from dicomweb.identity import authenticate
from dicomweb.identity.authenticate import IdentityConfig
from dicomweb.routes import ROUTES, Route
from dicomweb.service import PREFIX, Service, WebConfig
from dicomweb.transactions import capabilities
from storage import Archive


def _bound(route: Route, service: Service) -> Callable[..., Response]:
    def view(**variables: str) -> Response:
        return route.view(service, **variables)

    return view


class AppConfig(WebConfig, IdentityConfig, Protocol):
    """Every setting the web front door reads."""


def create_app(archive: Archive, config: AppConfig) -> Flask:
    """A WSGI app serving *archive* over DICOMweb."""
    service = Service(archive, config)
    app = Flask("wsiarchive")
    app.config["MAX_CONTENT_LENGTH"] = None
    app.extensions["wsiarchive"] = service
    blueprint = Blueprint("dicomweb", __name__, url_prefix=PREFIX)
    for route in ROUTES:
        endpoint = f"{route.id}_{route.method}"
        blueprint.add_url_rule(route.rule, endpoint, _bound(route, service), methods=[route.method])
    app.register_blueprint(blueprint)
    described = capabilities.tree(ROUTES)
    authenticate.install(app, service, config)
    auditing.install(app, service)
    accesslog.install(app)

    @app.before_request
    def _capabilities() -> Response | None:
        # PS3.18 §8.9: OPTIONS on the service root (or a resource below it) describes it.
        if request.method == "OPTIONS" and (
            request.path == PREFIX or request.path.startswith(PREFIX + "/")
        ):
            return capabilities.describe(described, service.root(), request.path[len(PREFIX) :])
        return None

    errors.install(app)
    app.after_request(compression.compress)
    return app
