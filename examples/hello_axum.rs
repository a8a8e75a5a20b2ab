//! Baseline for `bench/webhook/run.sh`: a bare axum hello-world answering `POST /` with
//! `{"ok":true}`.
//!
//! ```text
//! cargo build --release --example hello_axum
//! target/release/examples/hello_axum [PORT]     # or HELLO_AXUM_PORT=PORT; default 8090
//! ```
//!
//! Same stack as `functiond serve` (axum 0.8 on a multi-threaded tokio runtime with the default
//! worker count), with nothing else: no middleware, no logging, no flow. The JSON body is read
//! and parsed (as a webhook's would be) and then ignored.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

fn port() -> Result<u16, String> {
    let raw = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("HELLO_AXUM_PORT").ok())
        .unwrap_or_else(|| "8090".to_owned());
    raw.parse()
        .map_err(|_| format!("not a port number: {raw:?}"))
}

async fn hello(body: Bytes) -> Json<Value> {
    // Accept and ignore a small JSON body (an empty or malformed one is fine too).
    let _ = serde_json::from_slice::<Value>(&body);
    Json(json!({ "ok": true }))
}

#[tokio::main]
async fn main() {
    let port = match port() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("hello_axum: {e}");
            std::process::exit(2);
        }
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hello_axum: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    let app = Router::new().route("/", post(hello));
    eprintln!("hello_axum: listening on http://{addr}");
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("hello_axum: {e}");
        std::process::exit(1);
    }
}
