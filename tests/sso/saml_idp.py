"""A real SAML 2.0 identity provider for the SSO tests: pysaml2's Server (signing with Debian's
xmlsec1) behind a small WSGI app, served on loopback from a thread of the test process.

HTTP-Redirect binding in (the AuthnRequest), a sign-in form, HTTP-POST binding out (a signed
assertion, auto-posted to the SP's ACS by the browser). `mode` makes it misbehave on purpose:
"wrong-audience" (the assertion names another SP), "expired" (its validity ended ten minutes
ago), "bad-signature" (signed by a key that is not the configured certificate's).
"""

from __future__ import annotations

import datetime
import html
import re
import threading
from pathlib import Path
from socketserver import ThreadingMixIn
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

XMLSEC = "/usr/bin/xmlsec1"
OTHER_SP = "https://someone-else.test/saml"


def key_and_cert(folder: Path, name: str) -> tuple[Path, Path]:
    """A new RSA key and its self-signed certificate, as PEM files."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test idp {name}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = folder / f"{name}.key", folder / f"{name}.crt"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class SamlIdp:
    def __init__(self, folder: Path, users: list[dict]):
        self.folder = folder
        self.users = {user["username"]: user for user in users}
        self.key, self.cert = key_and_cert(folder, "idp")
        self.other_key, self.other_cert = key_and_cert(folder, "other")
        self.sp_metadata = ""
        self.mode = "normal"
        self._server = make_server("127.0.0.1", 0, self.app, server_class=_Threading, handler_class=_Quiet)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self.entity_id = f"{self.url}/metadata"
        self.sso_url = f"{self.url}/sso/redirect"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    @property
    def x509cert(self) -> str:
        return self.cert.read_text()

    def _pysaml2(self) -> Server:
        """The IdP as pysaml2 sees it, for the current mode (and the SP's metadata, once known)."""
        lifetime = {"minutes": -10} if self.mode == "expired" else {"minutes": 5}
        signing = (self.other_key, self.other_cert) if self.mode == "bad-signature" else (self.key, self.cert)
        config = IdPConfig().load(
            {
                "entityid": self.entity_id,
                "xmlsec_binary": XMLSEC,
                "key_file": str(signing[0]),
                "cert_file": str(signing[1]),
                "metadata": {"inline": self._metadata()} if self.sp_metadata else {},
                "service": {
                    "idp": {
                        "endpoints": {"single_sign_on_service": [(self.sso_url, BINDING_HTTP_REDIRECT)]},
                        "policy": {
                            "default": {
                                "lifetime": lifetime,
                                "name_form": "urn:oasis:names:tc:SAML:2.0:attrname-format:uri",
                            }
                        },
                        "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                    }
                },
            }
        )
        return Server(config=config)

    def _metadata(self) -> list[str]:
        """The SP's metadata, and the same SP under another entity ID (the audience of "wrong-audience":
        an assertion the IdP made for another service, posted to VibeBox's ACS)."""
        match = re.search(r'entityID="([^"]+)"', self.sp_metadata)
        return [self.sp_metadata, self.sp_metadata.replace(match.group(0), f'entityID="{OTHER_SP}"')]

    def app(self, environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/sso/redirect":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            return self._form(start_response, query["SAMLRequest"][0], query.get("RelayState", [""])[0], "")
        if path == "/sso/login" and environ["REQUEST_METHOD"] == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            form = {
                k: v[0]
                for k, v in parse_qs(environ["wsgi.input"].read(length).decode(), keep_blank_values=True).items()
            }
            return self._answer(start_response, form)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]

    def _form(self, start_response, saml_request: str, relay_state: str, error: str):
        page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Test SAML IdP</title></head>
<body><h1>Test SAML identity provider</h1>{f'<p role="alert">{error}</p>' if error else ""}
<form method="post" action="/sso/login">
<input type="hidden" name="SAMLRequest" value="{html.escape(saml_request)}">
<input type="hidden" name="RelayState" value="{html.escape(relay_state)}">
<label for="u">SAML user</label><input id="u" name="username">
<label for="p">SAML password</label><input id="p" name="password" type="password">
<button type="submit">Sign in to the SAML IdP</button></form></body></html>"""
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [page.encode()]

    def _answer(self, start_response, form: dict):
        user = self.users.get(form.get("username", ""))
        if user is None or user["password"] != form.get("password"):
            return self._form(
                start_response, form["SAMLRequest"], form.get("RelayState", ""), "Wrong user or password."
            )
        server = self._pysaml2()
        request = server.parse_authn_request(form["SAMLRequest"], BINDING_HTTP_REDIRECT).message
        sp_entity_id = request.issuer.text
        audience = OTHER_SP if self.mode == "wrong-audience" else sp_entity_id
        response = server.create_authn_response(
            identity={"mail": [user["email"]], "givenName": [user["username"]]},
            in_response_to=request.id,
            destination=request.assertion_consumer_service_url,
            sp_entity_id=audience,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=user["username"]),
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"},
            sign_assertion=True,
            sign_response=True,
            sign_alg=SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA256,
        )
        http = server.apply_binding(
            BINDING_HTTP_POST,
            str(response),
            request.assertion_consumer_service_url,
            form.get("RelayState", ""),
            response=True,
        )
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [http["data"].encode() if isinstance(http["data"], str) else http["data"]]
