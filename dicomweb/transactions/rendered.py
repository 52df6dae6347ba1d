"""Rendered and thumbnail resources (PS3.18 §10.4.1.1.3-4): parameters, media type
negotiation, and the multipart or single-part response around what storage renders."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from flask import Response, request

from dicomweb.http.caching import Representation
from dicomweb.http.errors import HTTPError
from dicomweb.http.mediatypes import Choice, Parts, negotiate_rendered
from dicomweb.http.multipart import new_boundary, write_parts
from dicomweb.http.warning import warning_header
from dicomweb.service import Service
from dicomweb.transactions.frames import parse_frame_list
from dicomweb.transactions.wado import accepted
from storage.dicom.document import instance_path
from storage.dicom.values import MAX_INT64, parse_integer
from storage.imaging.display import (
    IccProfile,
    Rendered,
    RenderedType,
    RenderRequest,
    Viewport,
    Window,
    WindowFunction,
)
from storage.imaging.tiles import TiledImage
from storage.records import StoredRecord


def _int(text: str, name: str, allow_empty: bool = False) -> int | None:
    text = text.strip()
    if allow_empty and text == "":
        return None
    try:
        return parse_integer(text, -MAX_INT64, MAX_INT64)
    except ValueError as exc:
        raise HTTPError(400, f"{name} {exc}") from exc


def parse_viewport(text: str, thumbnail: bool) -> Viewport:
    """``vw,vh[,sx,sy,sw,sh]`` (§8.3.5.1.3); elided values keep their commas."""
    parts = text.split(",")
    if len(parts) < 2 or len(parts) > 6:
        raise HTTPError(400, f"viewport {text!r} must be vw,vh[,sx,sy,sw,sh]")
    if thumbnail and len(parts) != 2:
        # §8.3.5.2: a thumbnail takes vw and vh only.
        raise HTTPError(400, f"a thumbnail viewport is vw,vh only, not {text!r}")
    vw, vh = _int(parts[0], "viewport vw"), _int(parts[1], "viewport vh")
    if not vw or not vh or vw < 1 or vh < 1:
        raise HTTPError(400, f"viewport {text!r}: vw and vh must be positive integers")
    rest = [_int(part, "viewport value", allow_empty=True) for part in parts[2:]]
    rest += [None] * (4 - len(rest))
    sx, sy, sw, sh = rest
    if (sx is not None and sx < 0) or (sy is not None and sy < 0):
        raise HTTPError(400, f"viewport {text!r}: sx and sy must not be negative")
    if sw == 0 or sh == 0:
        raise HTTPError(400, f"viewport {text!r}: sw and sh must not be 0")
    return Viewport(vw, vh, sx or 0, sy or 0, sw, sh)


def parse_window(text: str) -> Window:
    """``center,width,function`` (§8.3.5.1.4): all three, or 400."""
    parts = text.split(",")
    if len(parts) != 3:
        raise HTTPError(400, f"window {text!r} must be center,width,function")
    try:
        center, width = float(parts[0]), float(parts[1])
    except ValueError as exc:
        raise HTTPError(400, f"window {text!r}: center and width must be numbers") from exc
    function = parts[2].strip().lower()
    if function not in set(WindowFunction):
        names = ", ".join(WindowFunction)
        raise HTTPError(400, f"window function {parts[2]!r} is not one of {names}")
    if width <= 0:
        raise HTTPError(400, f"window {text!r}: width must be positive")
    return Window(center, width, WindowFunction(function))


def parse_parameters(thumbnail: bool) -> tuple[RenderRequest, list[str]]:
    """The rendering parameters of the request (the media type is negotiated apart), and
    Warning texts for ignored ones."""
    args = request.args
    warnings: list[str] = []
    viewport = parse_viewport(args["viewport"], thumbnail) if "viewport" in args else None
    if thumbnail:
        # §8.3.5.2: only accept, charset and viewport apply to thumbnails.
        other = sorted(set(args) - {"viewport", "accept", "charset"})
        if other:
            raise HTTPError(400, f"thumbnails take no {', '.join(other)} parameter")
        return RenderRequest(viewport=viewport), warnings
    quality = None
    if "quality" in args:
        quality = _int(args["quality"], "quality")
        if quality is None or not 1 <= quality <= 100:
            raise HTTPError(400, f"quality {args['quality']!r} must be an integer from 1 to 100")
    window = parse_window(args["window"]) if "window" in args else None
    iccprofile = None
    if "iccprofile" in args:
        value = args["iccprofile"].strip().lower()
        if value not in set(IccProfile):
            raise HTTPError(400, f"iccprofile {value!r} is not one of {', '.join(IccProfile)}")
        iccprofile = IccProfile(value)
    if "annotation" in args:
        values = [value.strip() for value in args["annotation"].split(",")]
        if not values or any(value not in ("patient", "technique") for value in values):
            raise HTTPError(400, f"annotation {args['annotation']!r}: use patient, technique")
        # §8.3.5.1.1: unsupported annotation values are reported in a Warning.
        warnings.append(f"The following annotation values are not supported: {','.join(values)}")
    return RenderRequest(
        viewport=viewport, quality=quality, window=window, iccprofile=iccprofile
    ), warnings


def _choose(multipart: Parts) -> Choice:
    choice = negotiate_rendered(accepted(), list(RenderedType), multipart)
    if choice is None:
        raise HTTPError(
            406,
            "none of the acceptable media types is a rendered type of this server; "
            f"available: {', '.join(RenderedType)}",
        )
    return choice


def _respond(
    service: Service,
    records: list[StoredRecord],
    thumbnail: bool,
    frames: list[int] | None,
    single_image: bool,
) -> Response:
    parameters, warnings = parse_parameters(thumbnail)
    choice = _choose(Parts.OPTIONAL if single_image else Parts.REQUIRED)
    render_request = replace(parameters, media_type=RenderedType(choice.media_type))
    if single_image:
        return _one_image(service, records, thumbnail, frames, choice, render_request, warnings)
    produced = list(_images(service, records, frames, render_request))  # errors get a status
    if not produced:
        raise HTTPError(404, "nothing here has pixel data that can be rendered")
    texts = warnings + [text for _, rendered in produced for text in rendered.warnings]
    boundary = new_boundary()
    parts = [
        (
            {
                "Content-Type": choice.media_type,
                "Content-Length": str(len(rendered.data)),
                "Content-Location": location,
            },
            [rendered.data],
        )
        for location, rendered in produced
    ]
    return Response(
        write_parts(boundary, parts),
        content_type=f'multipart/related; type="{choice.media_type}"; boundary={boundary}',
        headers=warning_header(texts, service.root()),
    )


def _one_image(
    service: Service,
    records: list[StoredRecord],
    thumbnail: bool,
    frames: list[int] | None,
    choice: Choice,
    render_request: RenderRequest,
    warnings: list[str],
) -> Response:
    """A thumbnail, or the rendering of one instance or frame, with its validators."""
    archive = service.archive
    record = records[0]
    # A study or series thumbnail depends on every instance: its validators cover them all
    # (the newest storing time, every blob key).
    newest = max((r.stored_at for r in records if r.stored_at), default=None)
    representation = Representation(
        record.blob_key, newest, "thumbnail" if thumbnail else "rendered",
        [r.blob_key for r in records], frames, choice, sorted(request.args.items(multi=True)),
        max_age=service.config.cache_max_age,
    )  # fmt: skip
    if representation.unchanged():
        return representation.not_modified()
    frame = frames[0] if frames else None
    if thumbnail:
        rendered = archive.thumbnail(records, render_request, frame)
    elif frame is not None:
        rendered = archive.render(record, render_request, frame)
    else:
        series = archive.records(record.study, record.series, who=service.who())
        rendered = archive.render(record, render_request, None, archive.images(series))
    texts = warnings + rendered.warnings
    headers = representation.headers() | warning_header(texts, service.root())
    if not choice.multipart:
        return Response(rendered.data, content_type=choice.media_type, headers=headers)
    boundary = representation.boundary
    part = {"Content-Type": choice.media_type, "Content-Length": str(len(rendered.data))}
    return Response(
        write_parts(boundary, [(part, [rendered.data])]),
        content_type=f'multipart/related; type="{choice.media_type}"; boundary={boundary}',
        headers=headers,
    )


def _images(
    service: Service,
    records: list[StoredRecord],
    frames: list[int] | None,
    render_request: RenderRequest,
) -> Iterator[tuple[str, Rendered]]:
    """Several images: one per frame of an instance, or one per instance (study, series),
    with the location of each."""
    archive, root = service.archive, service.root()
    first = records[0]
    if frames:
        base = root + instance_path(first.study, first.series, first.instance)
        for number in frames:
            yield f"{base}/frames/{number}/rendered", archive.render(first, render_request, number)
        return
    # The pyramid levels of an instance are the images of its own series, all of which are
    # among *records* already. Instances without pixel data that renders show nothing.
    shown = archive.images(records)
    levels: dict[str, list[TiledImage[StoredRecord]]] = {}
    for image in shown:
        levels.setdefault(image.source.series, []).append(image)
    for image in shown:
        record = image.source
        rendered = archive.render(record, render_request, None, levels[record.series])
        location = root + instance_path(record.study, record.series, record.instance)
        yield f"{location}/rendered", rendered


def rendered(
    service: Service,
    study: str,
    series: str | None = None,
    instance: str | None = None,
    frames: str | None = None,
) -> Response:
    """GET .../rendered of a study, series, instance or frame list."""
    return _resource(service, False, study, series, instance, frames)


def thumbnail(
    service: Service,
    study: str,
    series: str | None = None,
    instance: str | None = None,
    frames: str | None = None,
) -> Response:
    """GET .../thumbnail of a study, series, instance or frame list: always one image."""
    return _resource(service, True, study, series, instance, frames)


def _resource(
    service: Service,
    thumbnail: bool,
    study: str,
    series: str | None,
    instance: str | None,
    frames: str | None,
) -> Response:
    numbers = parse_frame_list(frames) if frames is not None else None
    records = service.archive.records(study, series, instance, who=service.who())
    single = thumbnail or (instance is not None and (numbers is None or len(numbers) == 1))
    return _respond(service, records, thumbnail, numbers, single)
