# Python (the Debian suite's own) in a virtualenv at /opt/venv, with uv (included by
# `# vibebox:include python`).

# Debian's Python is "externally managed" (PEP 668): the sandbox user gets a virtualenv of its
# own, first on PATH, so `python`, `pip install ...` just work; uv (from PyPI) is in it too.
ARG UV_VERSION=0.13.9
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-pip python3-venv \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check "uv==$UV_VERSION" \
    && /opt/venv/bin/uv --version \
    && find /opt/venv -name __pycache__ -prune -exec rm -rf {} + \
    && chown -R 1000:1000 /opt/venv

# requests/httpx installed from PyPI bring certifi's own bundle, which lacks the extra CA, so
# point them (and Python's ssl, and uv) at the system bundle.
ENV VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    UV_NATIVE_TLS=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
