"""Build time and size of each built-in template image (docs/benchmarks.md "Template images").

    .venv/bin/python bench/template_builds.py [--no-cache] [names...]

Builds the templates one after the other as `manage.py buildimages` does (same context: the
template's directory plus extra-ca.crt, BASE_IMAGE the template's base image, which must exist:
`make setup` builds trixie's, `buildimages python-3.11` bookworm's), under a throwaway tag that is
removed afterwards, and prints a Markdown table. Without --no-cache the engine's layer cache is
used, as on a machine that built the shared first steps for an earlier template; with it every
step runs (the time a template takes on a fresh engine when it is the first one built).
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vibebox.settings")

import django

django.setup()

from apps.marketplace.catalog import base_image, built_in_templates, extra_ca_bytes  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--no-cache", action="store_true")
    args = parser.parse_args()
    client = docker.from_env(timeout=3600)
    rows = []
    for source in built_in_templates():
        if args.names and source.name not in args.names:
            continue
        tag = f"vibebox-bench/{source.name}:build"
        with tempfile.TemporaryDirectory(prefix="vibebox-bench-") as context:
            shutil.copytree(source.path, context, dirs_exist_ok=True)
            Path(context, "extra-ca.crt").write_bytes(extra_ca_bytes())
            started = time.monotonic()
            for chunk in client.api.build(
                path=context,
                tag=tag,
                buildargs={"BASE_IMAGE": base_image(source.base)},
                nocache=args.no_cache,
                rm=True,
                forcerm=True,
                decode=True,
            ):
                if "error" in chunk:
                    raise SystemExit(f"{source.name}: {chunk['error']}")
            seconds = time.monotonic() - started
        size = client.api.inspect_image(tag)["Size"]
        client.api.remove_image(tag)
        rows.append((source.name, source.base, seconds, size))
        print(f"{source.name}: {seconds:.0f} s, {size / 1e6:.0f} MB", file=sys.stderr, flush=True)
    print(f"| template | base | build s ({'no cache' if args.no_cache else 'layer cache'}) | size MB |")
    print("|---|---|---|---|")
    for name, base, seconds, size in rows:
        print(f"| `{name}` | {base} | {seconds:.0f} | {size / 1e6:.0f} |")


if __name__ == "__main__":
    main()
