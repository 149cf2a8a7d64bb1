"""Upload + download of a 100 MiB file: VibeBox's API vs raw docker-py put_archive/get_archive.

Also reports the server process's peak RSS, which must stay far below the file size.

    .venv/bin/python bench/files.py [--size-mib 100] [--repeat 3]
"""

import argparse
import io
import json
import os
import tarfile
import time

import docker
from common import api, live_server, rss_kib


def _tar_of(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data = os.urandom(args.size_mib * 1024 * 1024)
    client = docker.from_env()
    with live_server() as (url, key, pid):
        rss_before = rss_kib(pid)
        _, sandbox = api(url, key, "POST", "/api/v1/sandboxes", {"template": "python-3"})
        base = f"/api/v1/sandboxes/{sandbox['id']}/files"
        container = client.containers.get(sandbox["id"])
        raw_times, api_times = [], []
        try:
            for _ in range(args.repeat):
                start = time.perf_counter()
                container.put_archive("/workspace", _tar_of("raw.bin", data))
                stream, _ = container.get_archive("/workspace/raw.bin")
                with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                    assert tar.extractfile("raw.bin").read() == data
                raw_times.append(time.perf_counter() - start)

                start = time.perf_counter()
                status, _ = api(
                    url,
                    key,
                    "POST",
                    f"{base}?path=api.bin",
                    data=data,
                    headers={"Content-Type": "application/octet-stream"},
                )
                assert status == 201
                status, body = api(url, key, "GET", f"{base}/api.bin")
                assert status == 200 and body == data
                api_times.append(time.perf_counter() - start)
        finally:
            api(url, key, "DELETE", f"/api/v1/sandboxes/{sandbox['id']}")
        rss_after = rss_kib(pid)
    mib = args.size_mib
    best_raw, best_api = min(raw_times), min(api_times)
    print(
        json.dumps(
            {
                "size_mib": mib,
                "baseline_docker_py_put_get_s": round(best_raw, 3),
                "api_upload_download_s": round(best_api, 3),
                "ratio_vs_baseline": round(best_api / best_raw, 2),
                "api_throughput_mib_s": round(2 * mib / best_api, 1),
                "server_peak_rss_mib": round(rss_after / 1024, 1),
                "server_rss_before_mib": round(rss_before / 1024, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
