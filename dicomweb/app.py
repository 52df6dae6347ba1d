"""The Flask application: the route table under /dicomweb, CORS preflights, Retrieve
Capabilities on OPTIONS, the limits, the one error mapping, security headers, gzip."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from flask import Blueprint, Flask, Response, request

from dicomweb import auditing, errors, limits, probes, viewer
from dicomweb.forwarding import ForwardConfig
from dicomweb.http import accesslog, compression, cors, metered, securityheaders
from dicomweb.identity import authenticate
from dicomweb.identity.authenticate import IdentityConfig
from dicomweb.jobs import JobsConfig
from dicomweb.routes import ROUTES, Route
from dicomweb.service import PREFIX, Service, WebConfig
from dicomweb.transactions import capabilities
from storage import Archive
from storage.jobs import JobQueue


def _bound(route: Route, service: Service) -> Callable[..., Response]:
    def view(**variables: str) -> Response:
        return route.view(service, **variables)

    return view


class AppConfig(
    WebConfig,
    IdentityConfig,
    JobsConfig,
    ForwardConfig,
    probes.ProbeConfig,
    viewer.ViewerConfig,
    Protocol,
):
    """Every setting the web front door reads."""


def cors_policy(config: WebConfig) -> cors.Policy | None:
    """The CORS policy of the settings (ValueError for one the Fetch standard rules out)."""
    return cors.Policy.of(
        config.cors_origins, config.cors_credentials, {route.method for route in ROUTES}
    )


def _served(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def create_app(archive: Archive, config: AppConfig, jobs: JobQueue | None = None) -> Flask:
    """A WSGI app serving *archive* over DICOMweb (and, given a queue, the job API)."""
    service = Service(archive, config)
    policy = cors_policy(config)
    app = Flask("wsiarchive")
    app.config["MAX_CONTENT_LENGTH"] = None
    app.extensions["wsiarchive"] = service
    blueprint = Blueprint("dicomweb", __name__, url_prefix=PREFIX)
    for route in ROUTES:
        endpoint = f"{route.id}_{route.method}"
        blueprint.add_url_rule(route.rule, endpoint, _bound(route, service), methods=[route.method])
    app.register_blueprint(blueprint)
    if jobs is not None:
        from dicomweb import jobs as job_api

        app.register_blueprint(job_api.blueprint(service, jobs, config))
    from dicomweb import forwarding as forward_api

    app.register_blueprint(forward_api.blueprint(service, config))
    described = capabilities.tree(ROUTES)
    if config.metrics:
        metered.install(app, probes.PATHS)  # first: its measure includes every other hook
    authenticator = authenticate.Authenticator(service, config)
    probes.install(app, service, config, authenticator)  # before CORS, identity and limits
    accesslog.install(app, quiet=probes.PATHS)

    if policy is not None:
        cors_on = policy

        @app.before_request
        def _preflight() -> Response | None:
            # First of all: a preflight carries no credentials (Fetch), and it asks about
            # CORS, not for the capabilities an OPTIONS otherwise gets.
            if cors_on.is_preflight() and _served(request.path):
                return cors_on.preflight()
            return None

    @app.before_request
    def _capabilities() -> Response | None:
        # PS3.18 §8.9: OPTIONS on the service root (or a resource below it) describes it.
        if request.method == "OPTIONS" and _served(request.path):
            return capabilities.describe(described, service.root(), request.path[len(PREFIX) :])
        return None

    # After the preflights (they carry no credentials), before the limits (they key on the
    # principal's subject); the audit record is written once the response is known.
    authenticate.install(app, service, config, authenticator)
    viewer.install(app, service, config, authenticator, login="login" in app.view_functions)
    auditing.install(app, service)
    limits.install(app, config)
    errors.install(app)
    app.after_request(compression.compress)
    if policy is not None:
        app.after_request(policy.decorate)
    tls_proxy = config.behind_tls_proxy
    app.after_request(lambda response: securityheaders.add(response, tls_proxy))
    return app
