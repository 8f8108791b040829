//! Namespace files on a real server: uploaded, read, listed, searched,
//! moved and deleted through Kestra's `/namespaces/{namespace}/files`
//! calls; copied into a script's working directory by its
//! `namespaceFiles`, as its globs say; read by `read('path')`.

#![allow(clippy::unwrap_used)]

mod common;

use common::Server;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

const NS: &str = "/api/v1/main/namespaces/company.team/files";

/// Uploads `content` as namespace file `path`, named `file_name`.
async fn upload(server: &Server, path: &str, file_name: &str, content: &str) -> common::Reply {
    let boundary = "nsfiles-boundary-1a2b3c";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"fileContent\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n{content}\r\n--{boundary}--\r\n"
    );
    let content_type = format!("multipart/form-data; boundary={boundary}");
    server
        .send(
            Method::POST,
            &format!("{NS}?path={path}"),
            &[("content-type", content_type.as_str())],
            body,
        )
        .await
}

fn names(listing: &Value) -> Vec<(String, String)> {
    listing
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["fileName"].as_str().unwrap().to_owned(),
                e["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn namespace_files_are_kept_listed_moved_and_deleted_and_scripts_get_them() {
    let server = Server::start(&[]).await;
    // The root exists before any file.
    let root = server.get(&format!("{NS}/stats")).await;
    assert_eq!(root.status, StatusCode::OK);
    assert_eq!(root.json()["type"], "Directory");
    assert_eq!(
        server.get(&format!("{NS}/directory")).await.json(),
        json!([])
    );

    for (path, content) in [
        ("/scripts/hello.sh", "echo hello from a namespace file"),
        ("/sql/q.sql", "SELECT 1"),
        ("/data/x.txt", "not wanted"),
        ("/q.sql", "SELECT 0"),
    ] {
        let name = path.rsplit('/').next().unwrap();
        let reply = upload(&server, path, name, content).await;
        assert_eq!(
            reply.status,
            StatusCode::NO_CONTENT,
            "{path}: {:?}",
            reply.body
        );
    }
    let file = server.get(&format!("{NS}?path=/sql/q.sql")).await;
    assert_eq!(file.status, StatusCode::OK);
    assert_eq!(&file.body[..], b"SELECT 1");
    let stats = server
        .get(&format!("{NS}/stats?path=/sql/q.sql"))
        .await
        .json();
    assert_eq!(stats["type"], "File");
    assert_eq!(stats["size"], 8);
    assert!(stats["lastModifiedTime"].as_u64().unwrap() > 0);
    assert_eq!(
        names(&server.get(&format!("{NS}/directory")).await.json()),
        [
            ("data".to_owned(), "Directory".to_owned()),
            ("q.sql".to_owned(), "File".to_owned()),
            ("scripts".to_owned(), "Directory".to_owned()),
            ("sql".to_owned(), "Directory".to_owned()),
        ]
    );
    assert_eq!(
        names(
            &server
                .get(&format!("{NS}/directory?path=/sql"))
                .await
                .json()
        ),
        [("q.sql".to_owned(), "File".to_owned())]
    );
    let mut found: Vec<String> =
        serde_json::from_value(server.get(&format!("{NS}/search?q=sql")).await.json()).unwrap();
    found.sort();
    assert_eq!(found, ["/q.sql", "/sql/q.sql"]);

    // A script gets the files its globs take; templates read them.
    let flow = r#"
id: uses-files
namespace: company.team
tasks:
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    namespaceFiles:
      include:
        - /scripts/**
        - q.sql
      exclude:
        - /q.sql
    commands:
      - sh scripts/hello.sh
      - test -f sql/q.sql
      - test ! -e q.sql
      - test ! -e data/x.txt
  - id: read
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read('sql/q.sql') }} / {{ read('/q.sql') }}"
"#;
    assert_eq!(server.create_flow(flow).await.status, StatusCode::OK);
    let reply = server
        .trigger(
            "/api/v1/main/executions/company.team/uses-files?wait=true",
            json!({}),
        )
        .await;
    let done = reply.json();
    assert_eq!(done["state"]["current"], "SUCCESS", "{done}");
    let read = done["taskRunList"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["taskId"] == "read")
        .unwrap();
    assert_eq!(read["outputs"]["value"], "SELECT 1 / SELECT 0");
    let logs = server
        .get(&format!(
            "/api/v1/main/logs/{}",
            done["id"].as_str().unwrap()
        ))
        .await
        .json();
    assert!(
        logs.as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"] == "hello from a namespace file"),
        "{logs}"
    );

    // Moved, then deleted with its folder.
    let moved = server
        .send(
            Method::PUT,
            &format!("{NS}?from=/data/x.txt&to=/archive/old/x.txt"),
            &[],
            "",
        )
        .await;
    assert_eq!(moved.status, StatusCode::NO_CONTENT, "{:?}", moved.body);
    assert_eq!(
        server.get(&format!("{NS}?path=/data/x.txt")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        &server
            .get(&format!("{NS}?path=/archive/old/x.txt"))
            .await
            .body[..],
        b"not wanted"
    );
    let deleted = server
        .send(Method::DELETE, &format!("{NS}?path=/archive"), &[], "")
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        server
            .get(&format!("{NS}/stats?path=/archive"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // What is not honoured is refused.
    assert_eq!(
        upload(&server, "/x", "all.zip", "PK").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        upload(&server, "/a/../../b", "b", "x").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}
