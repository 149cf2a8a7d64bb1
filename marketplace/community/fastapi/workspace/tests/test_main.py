from app.main import app
from fastapi.testclient import TestClient

client = TestClient(app)


def test_health():
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_create_list_and_complete_a_todo():
    created = client.post("/api/todos", json={"title": "write tests"})
    assert created.status_code == 201
    todo = created.json()
    assert todo["title"] == "write tests" and todo["done"] is False

    done = client.patch(f"/api/todos/{todo['id']}", json={"done": True})
    assert done.json()["done"] is True
    assert any(t["id"] == todo["id"] for t in client.get("/api/todos").json())


def test_validation_error_on_an_empty_title():
    assert client.post("/api/todos", json={"title": ""}).status_code == 422


def test_openapi_schema_is_served():
    assert client.get("/openapi.json").json()["info"]["title"] == "fastapi template"
