"""The one Warning builder: RFC 9110 quoting and an RFC 7234 warn-agent, read back by an
independent parser."""

from __future__ import annotations

from dicomweb.http.warning import quoted_string, warn_agent, warning_header
from tests.http_fields import parse_warnings


def test_texts_are_quoted_strings() -> None:
    assert quoted_string('a "b" \\ c') == '"a \\"b\\" \\\\ c"'
    assert quoted_string("line\r\nbreak\x00") == '"line%0D%0Abreak%00"'


def test_non_ascii_is_percent_encoded() -> None:
    """Before: '€', U+2028 and U+0085 went out as raw UTF-8 (obs-text, RFC 9110 §5.5)."""
    text = "F\u20ac \u2028 \x85 \x7f\ttab"
    assert quoted_string(text) == '"F%E2%82%AC %E2%80%A8 %C2%85 %7F%09tab"'


def test_an_ignored_parameter_name_cannot_inject_a_header(empty_web) -> None:
    """CR LF and non-ASCII in a parameter name: the Warning field stays one line of visible
    ASCII, read back by the independent parser."""
    _, client = empty_web
    response = client.get("/dicomweb/studies?Foo%0d%0aX-Injected:%20yes=1&F%e2%82%ac=2")
    assert response.status_code == 200
    field = response.headers["Warning"]
    assert all(" " <= char <= "~" for char in field), field
    assert "X-Injected" not in response.headers
    ((_, _, text),) = parse_warnings(field)
    assert text.endswith("Foo%0D%0AX-Injected: yes, F%E2%82%AC")


def test_the_agent_is_the_service_host_and_port() -> None:
    assert warn_agent("https://pacs.example.org:8443/dicomweb") == "pacs.example.org:8443"
    assert warn_agent("http://user:secret@host/dicomweb") == "host"
    assert warn_agent("") == "wsiarchive"


def test_the_field_reads_back_as_written() -> None:
    texts = ['a "quoted" word', "back\\slash", "plain", "plain"]
    field = warning_header(texts, "http://h:1/dicomweb")["Warning"]
    assert parse_warnings(field) == [
        (299, "h:1", 'a "quoted" word'),
        (299, "h:1", "back\\slash"),
        (299, "h:1", "plain"),
    ]
    assert warning_header([], "http://h/") == {}


def test_a_quote_in_an_ignored_parameter_name_is_escaped(empty_web) -> None:
    """Before: the QIDO Warning put the name between quotes as it was, ending the text early."""
    _, client = empty_web
    response = client.get('/dicomweb/studies?Col"our=red&Sha\\pe=round')
    assert response.status_code == 200
    ((code, _, text),) = parse_warnings(response.headers["Warning"])
    assert code == 299
    assert text == 'These query parameters are not supported and were ignored: Col"our, Sha\\pe'
