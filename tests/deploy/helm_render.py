"""The Helm chart's test renderer (deploy/kubernetes/helm/render: helm's engine over Debian's Sprig
v3 and sigs.k8s.io/yaml, not helm) as an image of the engine: built from the project's Debian base
image with the extra CA (as sandboxd is), gofmt and go vet included, and named after a digest of its
source, the base image and the CA, so an unchanged one is never built twice. `make lint` and
`make test` build it (`manage.py shell -v 0 -c 'from tests.deploy.helm_render import build; build()'`);
tests/deploy/test_helm_chart.py builds it when missing."""

import shutil
import sys
import tempfile
from pathlib import Path

from django.conf import settings

from apps.marketplace.catalog import extra_ca_bytes, tree_digest
from apps.sandboxes.images import base_image_build
from apps.sandboxes.runtime import get_driver
from tests.deploy.procfile import ROOT

RENDER = ROOT / "deploy" / "kubernetes" / "helm" / "render"


def build(*, log=lambda line: print(line, file=sys.stderr)) -> str:
    """The renderer's image tag, built unless the engine has it (1.5 to 3 minutes cold: docs/kubernetes.md);
    a failed build raises the engine's error after `log` saw its last lines (gofmt, go vet)."""
    base = base_image_build(log=log)
    tag = f"{settings.VIBEBOX_IMAGE_PREFIX}/helm-render:{tree_digest(RENDER, base.encode(), extra_ca_bytes())}"
    driver = get_driver()
    if driver.image_exists(tag):
        return tag
    log(f"building the chart's test renderer -> {tag}")
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="vibebox-helm-render-") as context:
        shutil.copytree(RENDER, context, dirs_exist_ok=True)
        Path(context, "extra-ca.crt").write_bytes(extra_ca_bytes())
        try:
            driver.image_build(
                context=context,
                tag=tag,
                target="render",
                buildargs={"BASE_IMAGE": base},
                labels={"vibebox.helm-render": "1"},
                log=lines.append,
            )
        except Exception:
            for line in lines[-40:]:
                log(f"  {line}")
            raise
    return tag
