from rest_framework.test import APIClient


def test_list_and_detail(api_client, templates, docker_client):
    response = api_client.get("/api/v1/templates")
    assert response.status_code == 200
    names = {item["name"] for item in response.json()}
    assert {"node-20", "node-22", "python-3.13", "python-3.11", "go-1.24", "rust-1.85", "fullstack"} <= names
    body = api_client.get("/api/v1/templates/node-20").json()
    assert body["displayName"] and body["language"] == "javascript" and body["builtIn"] is True
    assert body["ports"] and body["defaultEnv"]["NODE_ENV"] == "development"
    assert body["packageManagers"] == ["npm"] and body["workdir"] == "/workspace" and body["smoke"]
    assert body["buildState"] == "ready" and body["buildMessage"] == "" and body["buildProgress"] is None
    image = docker_client.images.get(body["image"])
    assert image.labels["vibebox.template"] == "node-20"
    assert image.labels["vibebox.template-version"] == str(body["version"])
    assert body["imageSize"] == image.attrs["Size"]


def test_python_3_is_python_3_13s_alias(api_client, templates):
    body = api_client.get("/api/v1/templates/python-3").json()
    assert body["name"] == "python-3.13" and "python-3" in body["aliases"]
    assert body["packageManagers"] == ["pip", "uv"] and body["ports"][0]["container"] == 8000


def test_unknown_template_is_404(api_client, templates):
    response = api_client.get("/api/v1/templates/nope")
    assert response.status_code == 404 and response.json()["error"]["code"] == "template_not_found"


def test_templates_need_a_key(templates):
    assert APIClient().get("/api/v1/templates").status_code == 401


def test_images_have_what_the_templates_promise(templates, docker_client):
    node = templates["node-20"].image
    out = docker_client.containers.run(
        node, ["sh", "-c", "node --version; npm --version; git --version; python3 --version; id -u"], remove=True
    ).decode()
    assert out.startswith("v20.") and "git version" in out and out.strip().endswith("1000")
    python = templates["python-3.13"].image
    out = docker_client.containers.run(
        python,
        ["sh", "-c", "python3 --version; python3 -m pip --version; python3 -m venv --help >/dev/null && echo venv"],
        remove=True,
    ).decode()
    assert out.startswith("Python 3.13") and "venv" in out
