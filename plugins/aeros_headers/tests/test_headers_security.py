"""The security-headers preset over plain HTTP and over TLS (a trustme certificate)."""

from __future__ import annotations

import ssl

import httpx
import pytest
import trustme

from aeros import WebServer

PRESET = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
    "x-frame-options": "DENY",
}


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """``(certfile, keyfile, client SSL context)`` for 127.0.0.1, signed by a throwaway CA."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("tls")
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(certfile), append=True)
    cert.private_key_pem.write_to_path(str(keyfile))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return str(certfile), str(keyfile), context


def make_app(**options) -> WebServer:
    app = WebServer(__name__, **options)

    @app.route("/")
    async def home():
        return "home"

    @app.route("/frameable")
    async def frameable():
        return "embed me", 200, {"X-Frame-Options": "SAMEORIGIN"}

    return app


def test_preset_over_http_has_no_hsts(serve):
    response = httpx.get(serve(make_app(security_headers=True)).url + "/", timeout=10)
    for name, value in PRESET.items():
        assert response.headers[name] == value
    assert "strict-transport-security" not in response.headers
    assert "content-security-policy" not in response.headers  # CSP is opt-in


def test_preset_over_https_adds_hsts(serve, tls):
    certfile, keyfile, context = tls
    server = serve(make_app(security_headers=True), certfile=certfile, keyfile=keyfile)
    assert server.url.startswith("https://")
    with httpx.Client(verify=context, timeout=10) as client:
        response = client.get(server.url + "/")
        missing = client.get(server.url + "/missing")
    assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    for name, value in PRESET.items():
        assert response.headers[name] == value
    assert missing.status_code == 404
    assert "strict-transport-security" in missing.headers


def test_overrides_removals_and_csp(serve, tls):
    certfile, keyfile, context = tls
    app = make_app(
        security_headers={
            "X-Frame-Options": "SAMEORIGIN",
            "referrer-policy": None,
            "Strict-Transport-Security": "max-age=60",
            "Content-Security-Policy": "default-src 'self'",
        }
    )
    server = serve(app, certfile=certfile, keyfile=keyfile)
    with httpx.Client(verify=context, timeout=10) as client:
        response = client.get(server.url + "/")
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert "referrer-policy" not in response.headers
    assert response.headers["strict-transport-security"] == "max-age=60"
    assert response.headers["content-security-policy"] == "default-src 'self'"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_hsts_can_be_forced_over_http(serve):
    server = serve(make_app(security_headers={"force_hsts": True}))
    response = httpx.get(server.url + "/", timeout=10)
    assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


def test_hsts_can_be_removed(serve, tls):
    certfile, keyfile, context = tls
    server = serve(make_app(security_headers={"Strict-Transport-Security": None}), certfile=certfile, keyfile=keyfile)
    with httpx.Client(verify=context, timeout=10) as client:
        response = client.get(server.url + "/")
    assert "strict-transport-security" not in response.headers
    assert response.headers["x-frame-options"] == "DENY"


def test_the_view_and_global_headers_beat_the_preset(serve):
    server = serve(make_app(security_headers=True, global_headers={"Referrer-Policy": "no-referrer"}))
    home = httpx.get(server.url + "/", timeout=10)
    frameable = httpx.get(server.url + "/frameable", timeout=10)
    assert home.headers.get_list("referrer-policy") == ["no-referrer"]
    assert frameable.headers.get_list("x-frame-options") == ["SAMEORIGIN"]


def test_bad_setting_fails_at_construction():
    with pytest.raises(TypeError):
        WebServer(__name__, security_headers="yes")
    with pytest.raises(ValueError):
        WebServer(__name__, security_headers={"Content-Security-Policy": "a\nb"})


def test_everything_over_http2(serve, tls):
    certfile, keyfile, context = tls
    app = make_app(security_headers=True, global_headers={"X-Global": "1"}, cors={"origins": ["https://app.example"]})
    server = serve(app, certfile=certfile, keyfile=keyfile)
    with httpx.Client(verify=context, http2=True, timeout=10) as client:
        answer = client.options(
            server.url + "/", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "PUT"}
        )
        actual = client.get(server.url + "/", headers={"Origin": "https://app.example"})
    assert answer.http_version == actual.http_version == "HTTP/2"
    assert answer.status_code == 204 and answer.headers["access-control-allow-origin"] == "https://app.example"
    assert actual.headers["access-control-allow-origin"] == "https://app.example"
    for response in (answer, actual):
        assert response.headers["x-global"] == "1"
        assert response.headers["strict-transport-security"].startswith("max-age=")
