"""Every built-in template, for real: a hello world through /execute in each language it lists
(and /execute runs), and one real package from PyPI or npm (through the machine's proxy) installed
with each of its pip, uv and npm, then used. Go, cargo, gem, bundler and maven are installed from a
registry on a test network in tests/sandboxes/test_packages_managers.py (their public registries
are out of reach here).

Marked `templates`: `make test-templates` (and .ci/run) runs them, after building every image."""

import pytest
import yaml
from django.conf import settings

from apps.sandboxes.images import templates_sync
from apps.sandboxes.languages import RUNNABLE
from tests.sandboxes.test_packages import install, run
from tests.templates.test_builtin_templates import NAMES

pytestmark = [pytest.mark.templates, pytest.mark.django_db(transaction=True)]

HELLO = {
    "python": 'print("hello from python")',
    "javascript": 'console.log("hello from javascript")',
    "typescript": 'const who: string = "typescript"; console.log(`hello from ${who}`)',
    "shell": "echo hello from shell",
    "go": 'fmt.Println("hello from go")',
    "rust": 'println!("hello from rust");',
    "ruby": 'puts "hello from ruby"',
    "java": 'System.out.println("hello from java");',
}
# manager: (package, a command that uses it)
PACKAGES = {
    "pip": ("six==1.17.0", 'python3 -c "import six; print(six.__version__)"'),
    "uv": ("six==1.17.0", 'python3 -c "import six; print(six.__version__)"'),
    "npm": ("is-odd@3.0.1", "node -e \"console.log(require('is-odd')(3))\""),
}
EXPECTED = {"pip": "1.17.0", "uv": "1.17.0", "npm": "true"}
WITH_REGISTRY = sorted(
    spec["name"]
    for spec in (yaml.safe_load(path.read_text()) for path in settings.VIBEBOX_IMAGES_DIR.glob("*/template.yaml"))
    if set(spec.get("packageManagers") or []) & set(PACKAGES)
)


@pytest.fixture
def template(request, templates):
    templates_sync(build=True, only=[request.param])
    return request.param


@pytest.mark.parametrize("template", NAMES, indirect=True)
def test_hello_world_in_every_language_it_runs(template, api_client, create_sandbox):
    detail = api_client.get(f"/api/v1/templates/{template}").json()
    languages = [name for name in detail["languages"] if name in RUNNABLE]
    assert languages, detail
    sandbox_id = create_sandbox(template=template)["id"]
    for language in languages:
        body = {"code": HELLO[language], "language": language, "timeout": 300}
        response = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/execute", body, format="json")
        assert response.status_code == 200, response.content
        answer = response.json()
        assert (answer["stdout"], answer["exitCode"]) == (f"hello from {language}\n", 0), (template, answer)


@pytest.mark.parametrize("template", WITH_REGISTRY, indirect=True)
def test_a_real_package_with_each_of_its_pip_uv_npm(template, api_client, api_key, create_sandbox):
    detail = api_client.get(f"/api/v1/templates/{template}").json()
    managers = [name for name in detail["packageManagers"] if name in PACKAGES]
    assert managers, detail
    assert settings.VIBEBOX_EXTRA_CA_CERTS  # the proxy's CA: without it no registry answers
    for manager in managers:
        sandbox_id = create_sandbox(template=template)["id"]  # one each: uv and pip share a venv
        package, use = PACKAGES[manager]
        _, messages, execution = install(api_client, api_key, sandbox_id, manager=manager, packages=[package])
        assert execution.exit_code == 0, (template, manager, messages[-5:])
        result = run(api_client, sandbox_id, f"cd {detail['workdir']} && {use}", timeout=120)
        assert (result["exitCode"], result["stdout"].strip()) == (0, EXPECTED[manager]), (template, manager, result)
