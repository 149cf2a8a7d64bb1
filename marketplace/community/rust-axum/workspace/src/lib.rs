//! The router, apart from `main` so that tests can call it without a socket.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{get, patch},
    Json, Router,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Mutex;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Todo {
    pub id: u64,
    pub title: String,
    pub done: bool,
}

#[derive(Default)]
struct Store {
    next_id: u64,
    todos: Vec<Todo>,
}

type AppState = Arc<Mutex<Store>>;

#[derive(Deserialize)]
struct NewTodo {
    title: String,
}

#[derive(Deserialize)]
struct TodoPatch {
    done: Option<bool>,
}

pub fn app() -> Router {
    let state: AppState = Arc::new(Mutex::new(Store::default()));
    Router::new()
        .route("/", get(index))
        .route("/health", get(health))
        .route("/api/todos", get(list_todos).post(create_todo))
        .route("/api/todos/:id", patch(update_todo))
        .with_state(state)
}

async fn index() -> Json<Value> {
    Json(json!({
        "name": "rust-axum",
        "message": "Hello from axum on VibeBox",
        "routes": ["/health", "/api/todos"],
    }))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn list_todos(State(state): State<AppState>) -> Json<Vec<Todo>> {
    Json(state.lock().await.todos.clone())
}

async fn create_todo(
    State(state): State<AppState>,
    Json(body): Json<NewTodo>,
) -> Result<(StatusCode, Json<Todo>), (StatusCode, Json<Value>)> {
    let title = body.title.trim();
    if title.is_empty() {
        return Err((StatusCode::BAD_REQUEST, Json(json!({ "error": "title is required" }))));
    }
    let mut store = state.lock().await;
    store.next_id += 1;
    let todo = Todo { id: store.next_id, title: title.to_string(), done: false };
    store.todos.push(todo.clone());
    Ok((StatusCode::CREATED, Json(todo)))
}

async fn update_todo(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    Json(body): Json<TodoPatch>,
) -> Result<Json<Todo>, (StatusCode, Json<Value>)> {
    let mut store = state.lock().await;
    let todo = store
        .todos
        .iter_mut()
        .find(|t| t.id == id)
        .ok_or((StatusCode::NOT_FOUND, Json(json!({ "error": "not found" }))))?;
    if let Some(done) = body.done {
        todo.done = done;
    }
    Ok(Json(todo.clone()))
}
