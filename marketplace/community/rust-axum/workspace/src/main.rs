//! `cargo run` serves the API on 0.0.0.0:$PORT (8080).

#[tokio::main]
async fn main() {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".to_string());
    let listener = tokio::net::TcpListener::bind(format!("0.0.0.0:{port}"))
        .await
        .expect("bind");
    println!("rust-axum listening on http://0.0.0.0:{port}");
    axum::serve(listener, rust_axum::app()).await.expect("serve");
}
