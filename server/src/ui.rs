//! The web UI: the assets built from `server/ui` (into `server/ui/dist`,
//! committed), embedded in the binary and served at `/ui`. Every path under
//! `/ui` that is not an asset is a page of the single-page app, answered
//! with its `index.html`; `/` redirects to `/ui/`.
//!
//! The build writes a gzip copy beside each text asset (`name.gz`), sent
//! to a client that accepts it. Assets under `assets/` have content hashes
//! in their names and are cached for good; `index.html` is revalidated.

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use include_dir::{Dir, File, include_dir};

use crate::api::ApiError;
use crate::state::AppState;

static DIST: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/ui/dist");

/// `/`, `/ui` and everything under it.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(index))
        .route("/ui/{*path}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    page(&headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match DIST.get_file(&path) {
        Some(file) if !path.ends_with(".gz") => send(file, &headers, path.starts_with("assets/")),
        // The bundle's files are all under `assets/`: one missing there is
        // a 404, not the app (a stale page must not load HTML as a script).
        // Anywhere else a path is a page (flow ids may hold dots).
        _ if path.starts_with("assets/") => {
            ApiError::not_found(format!("no UI asset {path}")).into_response()
        }
        _ => page(&headers),
    }
}

fn page(headers: &HeaderMap) -> Response {
    match DIST.get_file("index.html") {
        Some(file) => send(file, headers, false),
        None => ApiError::internal("the UI", "built without its index.html").into_response(),
    }
}

fn send(file: &'static File<'static>, headers: &HeaderMap, immutable: bool) -> Response {
    let path = file.path().to_string_lossy();
    let gzipped = accepts_gzip(headers)
        .then(|| DIST.get_file(format!("{path}.gz")))
        .flatten();
    let (body, encoding) = match gzipped {
        Some(gz) => (gz.contents(), Some("gzip")),
        None => (file.contents(), None),
    };
    let mut response = (StatusCode::OK, Body::from(body)).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&path)),
    );
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    if let Some(encoding) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    response
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;
    use axum::http::header::ACCEPT_ENCODING;

    use super::{accepts_gzip, content_type};

    fn with(encoding: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, encoding.parse().expect("a header"));
        h
    }

    #[test]
    fn gzip_is_sent_only_to_a_client_that_accepts_it() {
        assert!(accepts_gzip(&with("gzip, deflate, br")));
        assert!(accepts_gzip(&with("br;q=1.0, GZIP;q=0.5")));
        assert!(!accepts_gzip(&with("gzip;q=0")));
        assert!(!accepts_gzip(&with("br, identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(
            content_type("assets/a.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("x.unknown"), "application/octet-stream");
    }
}
