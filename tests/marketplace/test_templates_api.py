from rest_framework.test import APIClient


def test_list_and_detail(api_client, templates, docker_client):
    response = api_client.get("/api/v1/templates")
    assert response.status_code == 200
    names = {item["name"] for item in response.json()}
    assert {"node-20", "python-3"} <= names
    body = api_client.get("/api/v1/templates/node-20").json()
    assert body["displayName"] and body["language"] == "javascript" and body["builtIn"] is True
    assert body["ports"] and body["defaultEnv"]["NODE_ENV"] == "development"
    image = docker_client.images.get(body["image"])
    assert image.labels["vibebox.template"] == "node-20"
    assert image.labels["vibebox.template-version"] == str(body["version"])


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
    python = templates["python-3"].image
    out = docker_client.containers.run(
        python,
        ["sh", "-c", "python3 --version; python3 -m pip --version; python3 -m venv --help >/dev/null && echo venv"],
        remove=True,
    ).decode()
    assert out.startswith("Python 3.13") and "venv" in out
