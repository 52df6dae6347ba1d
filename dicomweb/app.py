"""The Flask application: routes of the DICOMweb service under /dicomweb."""

from __future__ import annotations

from flask import Blueprint, Flask, request

from dicomweb import capabilities, compression, errors, qido, rendered, stow, wado
from dicomweb.service import PREFIX, Service
from storage import Archive

S = "/studies/<study>"
SE = S + "/series/<series>"
I = SE + "/instances/<instance>"  # noqa: E741


def create_app(
    archive: Archive,
    base_url: str = "",
    max_request_bytes: int = 64 << 30,
    max_results: int = 1000,
    cache_max_age: int = 86400,
    *,
    transcode_cache_bytes: int = 256 << 20,
    thumbnail_size: int = 256,
    max_rendered_pixels: int = 50_000_000,
) -> Flask:
    """A WSGI app serving *archive* over DICOMweb."""
    service = Service(
        archive,
        base_url,
        max_request_bytes,
        max_results,
        cache_max_age,
        transcode_cache_bytes=transcode_cache_bytes,
        thumbnail_size=thumbnail_size,
        max_rendered_pixels=max_rendered_pixels,
    )
    app = Flask("wsiarchive")
    app.config["MAX_CONTENT_LENGTH"] = None
    app.extensions["wsiarchive"] = service
    bp = Blueprint("dicomweb", __name__, url_prefix=PREFIX)

    def route(rule: str, endpoint: str, view, methods=("GET",)) -> None:  # type: ignore[no-untyped-def]
        bp.add_url_rule(rule, endpoint, lambda **kw: view(service, **kw), methods=list(methods))

    # STOW-RS
    route("/studies", "store", stow.store, ("POST",))
    route(S, "store_study", stow.store, ("POST",))
    # QIDO-RS
    route("/studies", "search_studies", lambda svc: qido.search(svc, "study"))
    route("/series", "search_all_series", lambda svc: qido.search(svc, "series"))
    route("/instances", "search_all_instances", lambda svc: qido.search(svc, "instance"))
    route(S + "/series", "search_series", lambda svc, study: qido.search(svc, "series", study))
    route(
        S + "/instances",
        "search_study_instances",
        lambda svc, study: qido.search(svc, "instance", study),
    )
    route(
        SE + "/instances",
        "search_series_instances",
        lambda svc, study, series: qido.search(svc, "instance", study, series),
    )
    # WADO-RS
    route(S, "retrieve_study", wado.retrieve_instances)
    route(SE, "retrieve_series", wado.retrieve_instances)
    route(I, "retrieve_instance", wado.retrieve_instances)
    route(S + "/metadata", "study_metadata", wado.retrieve_metadata)
    route(SE + "/metadata", "series_metadata", wado.retrieve_metadata)
    route(I + "/metadata", "instance_metadata", wado.retrieve_metadata)
    route(I + "/frames/<frames>", "frames", wado.retrieve_frames)
    route(I + "/bulkdata/<path:path>", "bulkdata", wado.retrieve_bulkdata)
    # Rendered and thumbnail resources (§10.4.1.1.3-4)
    for name, view in (("rendered", rendered.rendered), ("thumbnail", rendered.thumbnail)):
        route(f"{S}/{name}", f"study_{name}", view)
        route(f"{SE}/{name}", f"series_{name}", view)
        route(f"{I}/{name}", f"instance_{name}", view)
        route(f"{I}/frames/<frames>/{name}", f"frames_{name}", view)

    app.register_blueprint(bp)

    @app.before_request
    def _capabilities():  # type: ignore[no-untyped-def]
        # PS3.18 §8.9: OPTIONS on the service root (or a resource below it) describes it.
        if request.method == "OPTIONS" and (
            request.path == PREFIX or request.path.startswith(PREFIX + "/")
        ):
            return capabilities.describe(service.root(), request.path[len(PREFIX) :])
        return None

    errors.install(app)
    app.after_request(compression.compress)
    return app
