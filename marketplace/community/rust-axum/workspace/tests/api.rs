use axum::{
    body::Body,
    http::{Request, StatusCode},
    Router,
};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn health_answers_ok() {
    let (status, body) = call(&rust_axum::app(), "GET", "/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "status": "ok" }));
}

#[tokio::test]
async fn todos_can_be_created_and_completed() {
    let app = rust_axum::app();
    let (status, todo) = call(&app, "POST", "/api/todos", Some(json!({ "title": "write tests" }))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(todo["title"], "write tests");

    let (_, todo) = call(&app, "PATCH", "/api/todos/1", Some(json!({ "done": true }))).await;
    assert_eq!(todo["done"], true);

    let (_, list) = call(&app, "GET", "/api/todos", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_empty_title_is_refused() {
    let (status, _) = call(&rust_axum::app(), "POST", "/api/todos", Some(json!({ "title": " " }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
