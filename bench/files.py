"""Upload + download of a 100 MiB file: VibeBox's API (through sandboxd) vs raw docker-py
put_archive/get_archive on the same container, each direction timed apart, in the same run.

`throughput_ratio_*` is the baseline's time over the API's (issue 19 asks >= 0.8: the API moves
at least 0.8 times as many bytes per second as docker-py). Also reports the server process's peak
RSS, which must stay far below the file size.

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
        times = {"raw_up": [], "raw_down": [], "api_up": [], "api_down": []}
        try:
            for _ in range(args.repeat):
                archive = _tar_of("raw.bin", data)  # built before the clock starts
                start = time.perf_counter()
                container.put_archive("/workspace", archive)
                times["raw_up"].append(time.perf_counter() - start)
                start = time.perf_counter()
                stream, _ = container.get_archive("/workspace/raw.bin")
                received = b"".join(stream)
                times["raw_down"].append(time.perf_counter() - start)
                with tarfile.open(fileobj=io.BytesIO(received)) as tar:
                    assert tar.extractfile("raw.bin").read() == data

                start = time.perf_counter()
                status, _ = api(
                    url,
                    key,
                    "POST",
                    f"{base}?path=api.bin",
                    data=data,
                    headers={"Content-Type": "application/octet-stream"},
                )
                times["api_up"].append(time.perf_counter() - start)
                assert status == 201
                start = time.perf_counter()
                status, body = api(url, key, "GET", f"{base}/api.bin")
                times["api_down"].append(time.perf_counter() - start)
                assert status == 200 and body == data
        finally:
            api(url, key, "DELETE", f"/api/v1/sandboxes/{sandbox['id']}")
        rss_after = rss_kib(pid)
    mib = args.size_mib
    best = {name: min(values) for name, values in times.items()}
    raw, through_api = best["raw_up"] + best["raw_down"], best["api_up"] + best["api_down"]
    print(
        json.dumps(
            {
                "size_mib": mib,
                "baseline_docker_py_put_s": round(best["raw_up"], 3),
                "baseline_docker_py_get_s": round(best["raw_down"], 3),
                "api_upload_s": round(best["api_up"], 3),
                "api_download_s": round(best["api_down"], 3),
                "throughput_ratio_upload": round(best["raw_up"] / best["api_up"], 2),
                "throughput_ratio_download": round(best["raw_down"] / best["api_down"], 2),
                "throughput_ratio_both": round(raw / through_api, 2),
                "api_throughput_mib_s": round(2 * mib / through_api, 1),
                "server_peak_rss_mib": round(rss_after / 1024, 1),
                "server_rss_before_mib": round(rss_before / 1024, 1),
                "load_average_1m": round(os.getloadavg()[0], 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
