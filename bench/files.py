"""Upload + download of a 100 MiB file: VibeBox's API (through sandboxd) vs raw docker-py
put_archive/get_archive on the same container, each direction timed apart, in the same run.

It also runs the same transfers in process (`manage.py shell` with the server's settings): the
driver's file_write/file_read through sandboxd against docker-py's put_archive/get_archive, without
Django's request path (which, under ASGI, spools a request body to disk one thread hop per chunk).

`throughput_ratio_*` is the baseline's time over the API's (issue 19 asks >= 0.8: the API moves
at least 0.8 times as many bytes per second as docker-py). Also reports the server process's peak
RSS, which must stay far below the file size.

    .venv/bin/python bench/files.py [--size-mib 100] [--repeat 3]
"""

import argparse
import io
import json
import os
import subprocess
import tarfile
import time

import docker
from common import PYTHON, ROOT, api, live_server, rss_kib


def _tar_of(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# Run by `manage.py shell -c` with the live server's environment: the driver through sandboxd
# against docker-py on the same container, interleaved, best of REPEAT; prints one JSON line.
IN_PROCESS = """
import io, json, os, tarfile, time
from apps.sandboxes.runtime import get_driver
name, size, repeat = os.environ["BENCH_SANDBOX"], int(os.environ["BENCH_SIZE"]), int(os.environ["BENCH_REPEAT"])
data = os.urandom(size)
driver = get_driver()
container = driver.client.containers.get(name)
archive = io.BytesIO()
with tarfile.open(fileobj=archive, mode="w") as tar:
    info = tarfile.TarInfo("raw.bin")
    info.size = size
    tar.addfile(info, io.BytesIO(data))
archive = archive.getvalue()
times = {"raw_up": [], "raw_down": [], "sandboxd_up": [], "sandboxd_down": []}
for _ in range(repeat):
    start = time.perf_counter()
    container.put_archive("/workspace", archive)
    times["raw_up"].append(time.perf_counter() - start)
    start = time.perf_counter()
    chunks, _ = container.get_archive("/workspace/raw.bin")
    assert len(b"".join(chunks)) > size
    times["raw_down"].append(time.perf_counter() - start)
    start = time.perf_counter()
    driver.file_write(name, "/workspace/sbx.bin", io.BytesIO(data), size, timeout=600)
    times["sandboxd_up"].append(time.perf_counter() - start)
    start = time.perf_counter()
    _, stream = driver.file_read(name, "/workspace/sbx.bin", timeout=600)
    assert b"".join(stream) == data
    times["sandboxd_down"].append(time.perf_counter() - start)
print(json.dumps({k: min(v) for k, v in times.items()}))
"""


def in_process(server, sandbox_id: str, size: int, repeat: int) -> dict:
    env = {**server.env, "BENCH_SANDBOX": sandbox_id, "BENCH_SIZE": str(size), "BENCH_REPEAT": str(repeat)}
    command = [str(PYTHON), str(ROOT / "manage.py"), "shell", "-c", IN_PROCESS]
    output = subprocess.run(command, env=env, check=True, cwd=ROOT, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data = os.urandom(args.size_mib * 1024 * 1024)
    client = docker.from_env()
    with live_server() as server:
        url, key, pid = server
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
            direct = in_process(server, sandbox["id"], len(data), args.repeat)
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
                "in_process_docker_py_put_s": round(direct["raw_up"], 3),
                "in_process_docker_py_get_s": round(direct["raw_down"], 3),
                "in_process_sandboxd_write_s": round(direct["sandboxd_up"], 3),
                "in_process_sandboxd_read_s": round(direct["sandboxd_down"], 3),
                "in_process_throughput_ratio_upload": round(direct["raw_up"] / direct["sandboxd_up"], 2),
                "in_process_throughput_ratio_download": round(direct["raw_down"] / direct["sandboxd_down"], 2),
                "server_peak_rss_mib": round(rss_after / 1024, 1),
                "server_rss_before_mib": round(rss_before / 1024, 1),
                "load_average_1m": round(os.getloadavg()[0], 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
