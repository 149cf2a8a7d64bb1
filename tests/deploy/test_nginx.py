"""deploy/nginx/vibebox.conf for real: `nginx -t` on it, then Debian's nginx started on loopback
(free ports; its own prefix, pid, logs and temp directories in a tmp dir) in front of a live
VibeBox (the Procfile's uvicorn, tests.conftest.live_server), with a certificate made here.

Only what a test machine cannot have is replaced in the file: the listen ports, the certificate
paths, the snippets' directory and the upstream's servers (the live server's port). Every
replacement is counted, so a changed file cannot silently stop being tested."""

import datetime
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import urllib.parse
from pathlib import Path

import httpx
import pytest
from asgiref.sync import async_to_sync
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from bench.common import free_port
from tests.conftest import live_server
from tests.waiting import wait_for
from vibebox.bodylimit import limit_for

ROOT = Path(__file__).resolve().parents[2]
NGINX_DIR = ROOT / "deploy" / "nginx"
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/sbin/nginx") if Path(p).exists()), None)
API_HOST = "vibebox.example.com"
PREVIEW_DOMAIN = "preview.example.com"

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (make proxies installs it)")


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for the API host, the preview wildcard and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, API_HOST)])
    now = datetime.datetime.now(datetime.UTC)
    loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    sans = [x509.DNSName(API_HOST), x509.DNSName(f"*.{PREVIEW_DOMAIN}"), loopback]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fullchain.pem", directory / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _replace(text: str, old: str, new: str, count: int) -> str:
    assert text.count(old) == count, f"deploy/nginx/vibebox.conf: expected {old!r} {count} times"
    return text.replace(old, new)


def _configure(tmp: Path, *, http_port: int, https_port: int, upstream_port: int) -> Path:
    """tmp/nginx.conf: an http {} block around deploy/nginx/vibebox.conf, as a site is included."""
    cert, key = _certificate(tmp)
    snippets = tmp / "snippets"
    snippets.mkdir()
    for name in ("vibebox-proxy.conf", "vibebox-tls.conf"):
        shutil.copy(NGINX_DIR / name, snippets / name)
    site = (NGINX_DIR / "vibebox.conf").read_text()
    site = _replace(site, "    listen 80;\n", f"    listen 127.0.0.1:{http_port};\n", 1)
    site = _replace(site, "    listen [::]:80;\n", "", 1)
    site = _replace(site, "    listen 443 ssl http2;\n", f"    listen 127.0.0.1:{https_port} ssl http2;\n", 2)
    site = _replace(site, "    listen [::]:443 ssl http2;\n", "", 2)
    site = _replace(site, "/etc/ssl/vibebox/fullchain.pem", str(cert), 2)
    site = _replace(site, "/etc/ssl/vibebox/privkey.pem", str(key), 2)
    site = _replace(site, "/etc/nginx/snippets/", f"{snippets}/", site.count("/etc/nginx/snippets/"))
    site = _replace(site, "server 127.0.0.1:8000 ", f"server 127.0.0.1:{upstream_port} ", 1)
    site = _replace(site, "    server 127.0.0.1:8010 max_fails=3 fail_timeout=10s;\n", "", 1)
    (tmp / "vibebox.conf").write_text(site)
    for sub in ("logs", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / sub).mkdir()
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""
user root root;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/logs/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {tmp}/logs/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/vibebox.conf;
}}
"""
    )
    return conf


def _nginx(conf: Path, *args: str, **kwargs):
    return [NGINX, "-p", str(conf.parent), "-e", str(conf.parent / "logs" / "error.log"), "-c", str(conf), *args]


@pytest.fixture
def proxied(transactional_db, tmp_path):
    """(https base URL, http base URL, the live server's URL, an ssl context trusting the certificate)."""
    extra = {"VIBEBOX_ALLOWED_HOSTS": f"{API_HOST},127.0.0.1,localhost", "VIBEBOX_PREVIEW_DOMAIN": PREVIEW_DOMAIN}
    with live_server(**extra) as (url, _pid):
        upstream_port = int(url.rsplit(":", 1)[1])
        http_port, https_port = free_port(), free_port()
        conf = _configure(tmp_path, http_port=http_port, https_port=https_port, upstream_port=upstream_port)
        tested = subprocess.run(_nginx(conf, "-t"), capture_output=True, text=True)
        assert tested.returncode == 0, tested.stderr
        assert "test is successful" in tested.stderr
        process = subprocess.Popen(_nginx(conf, "-g", "daemon off;"), stderr=subprocess.PIPE, text=True)
        try:

            def listening() -> bool:
                assert process.poll() is None, f"nginx exited: {process.stderr.read()}"
                with socket.socket() as sock:
                    return sock.connect_ex(("127.0.0.1", https_port)) == 0

            wait_for(listening, timeout=30, interval=0.1, what="nginx")
            context = ssl.create_default_context(cafile=str(tmp_path / "fullchain.pem"))
            yield f"https://127.0.0.1:{https_port}", f"http://127.0.0.1:{http_port}", url, context
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_nginx_t_accepts_the_configuration(tmp_path):
    conf = _configure(tmp_path, http_port=free_port(), https_port=free_port(), upstream_port=free_port())
    result = subprocess.run(_nginx(conf, "-t"), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr and "test is successful" in result.stderr


def test_https_reaches_the_api_and_http_redirects(proxied, api_key):
    https, http, _url, context = proxied
    with httpx.Client(verify=context, timeout=30) as client:
        # TLS terminated by nginx, the answer VibeBox's (the certificate is the one made here).
        key = {"Authorization": f"Bearer {api_key[1]}"}
        answer = client.get(f"{https}/api/v1/sandboxes", headers={"Host": API_HOST, **key})
        assert answer.status_code == 200, answer.text
        assert answer.json()["results"] == [] and answer.headers["x-request-id"]
        refused = client.get(f"{https}/api/v1/sandboxes", headers={"Host": API_HOST})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "not_authenticated"
        assert client.get(f"{https}/healthz", headers={"Host": API_HOST}).json() == {"status": "ok"}
        assert "max-age=" in answer.headers["strict-transport-security"]
    with httpx.Client(timeout=30) as client:
        for host in (API_HOST, f"3000-sbx_abc.{PREVIEW_DOMAIN}"):
            moved = client.get(f"{http}/api/v1/sandboxes?limit=1", headers={"Host": host})
            assert moved.status_code == 308
            assert moved.headers["location"] == f"https://{host}/api/v1/sandboxes?limit=1"


def test_a_websocket_upgrades_through_nginx(proxied, api_key):
    https, _http, _url, context = proxied
    base = https.replace("https://", "wss://")

    async def scenario():
        # VibeBox's consumer accepts the key and the stream stays open through the proxy.
        async with connect(
            f"{base}/ws/activity", ssl=context, additional_headers={"Authorization": f"Bearer {api_key[1]}"}
        ) as ws:
            assert ws.response.status_code == 101
            pong = await ws.ping()
            await pong
        # Without a key it is VibeBox that refuses the upgrade, with its envelope.
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"{base}/ws/activity", ssl=context)
        assert refused.value.response.status_code == 401
        assert json.loads(refused.value.response.body)["error"]["code"] == "not_authenticated"

    async_to_sync(scenario)()


def test_wildcard_preview_hosts_reach_the_preview_router(proxied):
    https, _http, url, context = proxied
    host = f"3000-sbx_{'0' * 20}.{PREVIEW_DOMAIN}"
    with httpx.Client(verify=context, timeout=30) as client:
        through = client.get(f"{https}/some/page?x=1", headers={"Host": host})
        direct = client.get(f"{url}/some/page?x=1", headers={"Host": host})
    # apps/sandboxes/preview/routing.py answered (not Django, which has no such page and does not
    # know the host): the same answer as straight to the server, for a sandbox that does not exist.
    assert through.status_code == direct.status_code == 404
    assert "preview" in direct.text.lower()
    assert through.text == direct.text
    # A host of another domain is not a preview: Django refuses a host it does not allow.
    with httpx.Client(verify=context, timeout=30) as client:
        other = client.get(f"{https}/some/page", headers={"Host": "3000-sbx_x.elsewhere.example.net"})
    assert other.status_code == 400


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/api/v1/sandboxes", "application/json"),
        ("/api/v1/sandboxes/sbx_x/files", "application/octet-stream"),
        ("/sandboxes/sbx_x/files/upload", "multipart/form-data; boundary=x"),
        ("/api/v1/marketplace/submissions", "multipart/form-data; boundary=x"),
        ("/api/v1/git-hooks/hook_x", "application/json"),
        ("/graphql", "multipart/form-data; boundary=x"),
        ("/graphql", "application/json"),  # nginx lets it through (an upload's limit): VibeBox refuses it
    ],
)
def test_body_limits_are_the_apps(proxied, path, content_type):
    """A body one byte over the app's limit for its path (vibebox/bodylimit.py) is refused with
    the app's envelope and the app's limit, before a byte of it is sent: by nginx where the path's
    limit is all there is, by VibeBox where the content type decides (GraphQL)."""
    https, _http, _url, context = proxied
    limit = limit_for("POST", path, content_type)
    host, port = urllib.parse.urlsplit(https).hostname, urllib.parse.urlsplit(https).port
    with (
        socket.create_connection((host, port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: {API_HOST}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {limit + 1}\r\n\r\n"
            ).encode()
        )
        received = b""
        while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
            chunk = tls.recv(65536)
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    error = json.loads(body)["error"]
    assert error["code"] == "request_too_large" and error["details"]["limit"] == limit


SITE = "served by a sandbox, through nginx"


def test_a_sandbox_s_server_answers_on_its_preview_host_through_nginx(proxied, api_client, create_sandbox, api_key):
    """A real sandbox's http.server on port 3000, made public, reached as
    https://3000-<id>.preview.example.com/ through nginx; and the API, asked through nginx for the
    port's path-form link, builds it from the scheme and host nginx passed on (https, the API host)."""
    https, _http, _url, context = proxied
    sandbox_id = create_sandbox(template="python-3")["id"]
    ran = api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/exec",
        {"command": f"mkdir -p /workspace/site && printf %s '{SITE}' > /workspace/site/index.html"},
        format="json",
    )
    assert ran.json()["exitCode"] == 0, ran.content
    started = api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/exec",
        {"command": "cd /workspace/site && exec python3 -m http.server 3000", "background": True},
        format="json",
    )
    assert started.status_code == 202, started.content

    def listening() -> bool:
        ports = api_client.get(f"/api/v1/sandboxes/{sandbox_id}/ports").json()["ports"]
        return any(entry["port"] == 3000 and entry["listening"] for entry in ports)

    wait_for(listening, timeout=60, interval=0.2, what="the sandbox's server")
    made_public = api_client.patch(f"/api/v1/sandboxes/{sandbox_id}/ports/3000", {"public": True}, format="json")
    assert made_public.status_code == 200, made_public.content
    host = f"3000-{sandbox_id}.{PREVIEW_DOMAIN}".lower()  # as browsers send it
    with httpx.Client(verify=context, timeout=60) as client:
        page = client.get(f"{https}/", headers={"Host": host})
        assert page.status_code == 200 and page.text == SITE
        link = client.get(
            f"{https}/api/v1/sandboxes/{sandbox_id}/ports/3000/url",
            params={"form": "path"},
            headers={"Host": API_HOST, "Authorization": f"Bearer {api_key[1]}"},
        )
    assert link.status_code == 200, link.text
    assert link.json()["url"].startswith(f"https://{API_HOST}/preview/{sandbox_id}/3000/"), link.json()
