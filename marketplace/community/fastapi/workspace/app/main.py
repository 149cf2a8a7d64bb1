"""A small FastAPI service: run it with `uvicorn app.main:app --reload --host 0.0.0.0 --port 8000`."""

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

app = FastAPI(title="fastapi template", version="1.0.0")


class TodoIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)


class Todo(TodoIn):
    id: int
    done: bool = False


class TodoPatch(BaseModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    done: bool | None = None


_todos: dict[int, Todo] = {}


@app.get("/")
def index() -> dict:
    return {"name": "fastapi", "message": "Hello from FastAPI on VibeBox", "docs": "/docs"}


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}


@app.get("/api/todos")
def list_todos() -> list[Todo]:
    return list(_todos.values())


@app.post("/api/todos", status_code=201)
def create_todo(body: TodoIn) -> Todo:
    todo = Todo(id=max(_todos, default=0) + 1, title=body.title)
    _todos[todo.id] = todo
    return todo


@app.patch("/api/todos/{todo_id}")
def update_todo(todo_id: int, body: TodoPatch) -> Todo:
    todo = _todos.get(todo_id)
    if todo is None:
        raise HTTPException(status_code=404, detail="not found")
    changes = body.model_dump(exclude_none=True)
    _todos[todo_id] = todo.model_copy(update=changes)
    return _todos[todo_id]
