#!/usr/bin/env python3
"""Runs the built image the way a virtual node (ACI) runs the storefront pod, and shops in it.

    aci_terms_run.py DOCKER IMAGE RENDERED_OVERLAY_YAML

What the ACI provider behind virtual nodes does with a pod (virtual-kubelet/azure-aci,
pkg/provider): it passes the image, `command` + `args` (as one command line), the environment,
ports, volume mounts, resources and probes, and nothing of `securityContext` or `fsGroup`
(aci.go, getContainers); an emptyDir becomes an ACI emptyDir volume that nobody chowns
(aci_volumes.go, getVolumes). So here, with the rendered Deployment `doorbuster` of the overlay:

- the image's own USER (no --user), no read-only root, no dropped capabilities;
- the entrypoint replaced by `command`, followed by `command[1:]` + `args`, as rendered;
- the rendered env: literal values as they are, the downward API's pod and node names as a
  virtual node would fill them, a Secret's value replaced by something local (the Application
  Insights connection string points at a closed port on 127.0.0.1: nothing leaves the machine);
  PORT and DOORBUSTER_ADMIN_PORT moved to free ports and DOORBUSTER_HOST=127.0.0.1, because the
  container shares the host's network here;
- every volume mount of the container as a root-owned 0755 folder.

Then /readyz must answer 200, the home page 200 with the shop in it, and a checkout 201.

Last, the other half of the promise: the image with a root-owned 0755 folder mounted over /data
(what the overlays did before) must exit at once with one line that names the cause: the folder,
the uid that cannot write it, its owner and mode.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import yaml

DEPLOYMENT = "doorbuster"
CONTAINER = "doorbuster"
POD_NAME = "doorbuster-7f9c8d6b5-aci42"
NODE_NAME = "virtual-node-aci-linux"
LOCAL_CONNECTION_STRING = (
    "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
    "IngestionEndpoint=http://127.0.0.1:9/;LiveEndpoint=http://127.0.0.1:9/"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def env_value(entry: dict) -> str:
    if "value" in entry:
        return entry["value"]
    source = entry.get("valueFrom", {})
    field = source.get("fieldRef", {}).get("fieldPath")
    if field == "metadata.name":
        return POD_NAME
    if field == "spec.nodeName":
        return NODE_NAME
    if "secretKeyRef" in source:
        return LOCAL_CONNECTION_STRING if entry["name"] == "APPLICATIONINSIGHTS_CONNECTION_STRING" else "placeholder"
    sys.exit(f"aci_terms_run: cannot fill {entry['name']} from {source}")


def root_owned_folder(parent: str) -> str:
    folder = tempfile.mkdtemp(dir=parent)
    os.chown(folder, 0, 0)
    os.chmod(folder, 0o755)
    return folder


def run(docker: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([docker, *args], capture_output=True, text=True, check=check)


def logs(docker: str, name: str) -> str:
    result = run(docker, "logs", name, check=False)
    return result.stdout + result.stderr


def running(docker: str, name: str) -> bool:
    return run(docker, "inspect", "-f", "{{.State.Running}}", name, check=False).stdout.strip() == "true"


def serve_and_shop(docker: str, image: str, container: dict, work: str) -> None:
    name = f"doorbuster-aci-check-{os.getpid()}"
    command = container.get("command") or []
    if not command:
        sys.exit("aci_terms_run: the container has no command; ACI refuses args without one")
    port, admin_port = free_port(), free_port()
    env = {e["name"]: env_value(e) for e in container.get("env", [])}
    env.update(PORT=str(port), DOORBUSTER_ADMIN_PORT=str(admin_port), DOORBUSTER_HOST="127.0.0.1")
    argv = ["run", "-d", "--name", name, "--network", "host", "--entrypoint", command[0]]
    for key, value in env.items():
        argv += ["-e", f"{key}={value}"]
    mounts = []
    for mount in container.get("volumeMounts", []):
        folder = root_owned_folder(work)
        argv += ["-v", f"{folder}:{mount['mountPath']}{':ro' if mount.get('readOnly') else ''}"]
        mounts.append(mount["mountPath"])
    argv += [image, *command[1:], *container.get("args", [])]
    print(f"docker run as the image's USER, {' '.join(command + container.get('args', []))}, "
          f"{len(env)} variables, root-owned 0755 folders at: {', '.join(mounts) or 'none'}")
    run(docker, *argv)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline:
            try:
                status, _ = http("GET", f"{base}/readyz")
            except OSError:
                status = 0
            if status == 200 or not running(docker, name):
                break
            time.sleep(0.5)
        if status != 200:
            print(logs(docker, name)[-3000:])
            sys.exit(f"aci_terms_run: FAILED: /readyz never answered 200 on ACI's terms "
                     f"({'the container exited' if not running(docker, name) else 'timed out'})")
        status, home = http("GET", f"{base}/")
        if status != 200 or "Doorbuster" not in home:
            sys.exit(f"aci_terms_run: FAILED: the home page answered {status}")
        status, body = http("GET", f"{base}/api/products?per_page=50")
        products = [p for p in json.loads(body)["items"] if p.get("stock", 1) > 0]
        order = {
            "items": [{"product_id": products[0]["id"], "quantity": 1}],
            "customer": {"name": "Ada", "email": "ada@example.com", "address": "1 Loop Rd",
                         "city": "Cambridge", "postal_code": "02139", "country": "US"},
        }
        status, body = http("POST", f"{base}/api/checkout", order, {"Idempotency-Key": str(uuid.uuid4())})
        if status != 201:
            sys.exit(f"aci_terms_run: FAILED: checkout answered {status}: {body[:300]}")
        top = run(docker, "top", name, "-o", "pid,uid", check=False).stdout.splitlines()
        uid = top[1].split()[1] if len(top) > 1 else "?"
        print(f"/readyz 200, / 200, checkout 201 (order {json.loads(body).get('id')}), "
              f"process uid {uid} (the image's USER)")
    finally:
        run(docker, "rm", "-f", name, check=False)


def fails_with_the_cause(docker: str, image: str, work: str) -> None:
    name = f"doorbuster-aci-data-{os.getpid()}"
    folder = root_owned_folder(work)
    run(docker, "run", "-d", "--name", name, "--network", "host", "-v", f"{folder}:/data",
        "-e", "DOORBUSTER_HOST=127.0.0.1", "-e", f"PORT={free_port()}",
        "-e", f"DOORBUSTER_ADMIN_PORT={free_port()}", image)
    try:
        deadline = time.monotonic() + 30
        while running(docker, name) and time.monotonic() < deadline:
            time.sleep(0.5)
        code = run(docker, "inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        last = [line for line in logs(docker, name).splitlines() if line.strip()][-1:] or [""]
        wanted = ["/data is not writable by uid 65532", "owned by uid 0", "mode 0755", "DATABASE_URL"]
        if running(docker, name) or code == "0" or not all(w in last[0] for w in wanted):
            sys.exit(f"aci_terms_run: FAILED: with a root-owned /data the shop should exit at once naming the "
                     f"cause; exit {code}, last line: {last[0][:400]}")
        print(f"root-owned 0755 /data: exits {code} at once: {last[0][:200]}…")
    finally:
        run(docker, "rm", "-f", name, check=False)


def main() -> int:
    docker, image, rendered = sys.argv[1:4]
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == DEPLOYMENT)
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == CONTAINER)
    with tempfile.TemporaryDirectory(prefix="doorbuster-aci-") as work:
        os.chmod(work, 0o755)
        serve_and_shop(docker, image, container, work)
        fails_with_the_cause(docker, image, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
