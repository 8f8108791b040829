//! `core.http.Request`: one HTTP call, run on the worker pool so that a
//! shard never waits on the outside world. Outputs `uri`, `code`, `headers`
//! and `body` (text).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Answer, Job, JobMetric, Started, TaskContext, TaskKind, TaskType, WorkerEnv};
use crate::executor::into_text;
use crate::expression::Property;
use crate::flow::{Props, parse_duration};

/// The largest response body an HTTP task reads; a larger one fails it.
const MAX_BODY_BYTES: u64 = 10 << 20;
/// The longest an HTTP task waits when its flow sets no `readTimeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) static REQUEST: TaskType = TaskType {
    name: "io.kestra.plugin.core.http.Request",
    aliases: &["io.kestra.plugin.fs.http.Request"],
    flowable: false,
    own_timeout: false,
    parse,
};

/// `core.http.Download`: the same call, its answer's body streamed into a
/// file of the internal storage (`uri`, `code`, `length`, `headers`).
pub(super) static DOWNLOAD: TaskType = TaskType {
    name: "io.kestra.plugin.core.http.Download",
    aliases: &["io.kestra.plugin.fs.http.Download"],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        let fail_on_empty = p.bool("failOnEmptyResponse", true);
        let request = parse_request(p)?;
        Some(Arc::new(Request {
            download: Some(fail_on_empty),
            ..request
        }))
    },
};

#[derive(Debug)]
pub(crate) struct Request {
    uri: Property,
    /// Default `GET`.
    method: Property,
    body: Option<Property>,
    /// `formData`: a form, sent in place of `body` (multipart with
    /// `contentType: multipart/form-data`, else URL-encoded).
    form_data: Option<Property>,
    content_type: Option<Property>,
    /// A map of header name to value.
    headers: Option<Property>,
    /// `options.readTimeout`; [`DEFAULT_TIMEOUT`] when absent.
    read_timeout: Option<Duration>,
    /// `options.allowFailed`: a 4xx/5xx answer does not fail the task.
    allow_failed: bool,
    /// A Download, with `failOnEmptyResponse`.
    download: Option<bool>,
}

fn parse(p: &mut Props<'_, '_>) -> Option<Arc<dyn TaskKind>> {
    Some(Arc::new(parse_request(p)?))
}

fn parse_request(p: &mut Props<'_, '_>) -> Option<Request> {
    let uri = p.req_string_property("uri");
    let method = p.string_property_or("method", "GET");
    let body = p.string_property("body");
    let form_data = p.property("formData");
    let content_type = p.string_property("contentType");
    let headers = p.property("headers");
    let mut read_timeout = None;
    let mut allow_failed = false;
    if let Some((options, at)) = p.json("options") {
        let Value::Object(options) = options else {
            p.problem(&at, "expected a map of options");
            return None;
        };
        for (key, value) in &options {
            let here = at.child(key);
            match (key.as_str(), value) {
                (_, Value::Null) => {}
                ("readTimeout", Value::String(text)) => match parse_duration(text) {
                    Some(d) => read_timeout = Some(d),
                    None => p.problem(
                        &here,
                        format!("`{text}` is not an ISO-8601 duration (e.g. PT30S)"),
                    ),
                },
                ("allowFailed", Value::Bool(b)) => allow_failed = *b,
                ("readTimeout", _) => p.problem(&here, "expected an ISO-8601 duration"),
                ("allowFailed", _) => p.problem(&here, "expected true or false"),
                // Kestra has more (timeouts, redirects, proxy, auth, ssl...):
                // refused rather than ignored until they are honoured.
                (other, _) => {
                    p.problem(&here, format!("HTTP option `{other}` is not supported yet"))
                }
            }
        }
    }
    Some(Request {
        uri: uri?,
        method: method?,
        body,
        form_data,
        content_type,
        headers,
        read_timeout,
        allow_failed,
        download: None,
    })
}

impl TaskKind for Request {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        match self.call(ctx) {
            Ok(call) => Started::Work(Box::new(call)),
            Err(e) => Started::Done(Err(e)),
        }
    }
}

impl Request {
    /// The call with its properties rendered now.
    fn call(&self, ctx: &TaskContext<'_>) -> Result<Call, String> {
        let text = |p: &Option<Property>| p.as_ref().map(|p| ctx.render_text(p)).transpose();
        let headers = match &self.headers {
            Some(h) => match ctx.render(h)? {
                Value::Object(map) => map.into_iter().map(|(k, v)| (k, into_text(v))).collect(),
                Value::Null => Vec::new(),
                other => return Err(format!("headers `{other}` is not a map")),
            },
            None => Vec::new(),
        };
        let content_type = text(&self.content_type)?;
        let form = match &self.form_data {
            None => None,
            Some(p) => Some(form(ctx, ctx.render(p)?, content_type.as_deref())?),
        };
        Ok(Call {
            method: ctx.render_text(&self.method)?,
            uri: ctx.render_text(&self.uri)?,
            body: text(&self.body)?,
            form,
            content_type,
            headers,
            timeout: self.read_timeout,
            allow_failed: self.allow_failed,
            download: self
                .download
                .map(|fail_on_empty| (ctx.place(), fail_on_empty)),
        })
    }
}

/// `formData` rendered: the form a call sends.
#[derive(Debug, Clone, PartialEq)]
enum Form {
    /// `application/x-www-form-urlencoded`: names and values.
    Encoded(Vec<(String, String)>),
    /// `multipart/form-data`: its parts, in order.
    Multipart(Vec<FormPart>),
}

#[derive(Debug, Clone, PartialEq)]
enum FormPart {
    Text {
        name: String,
        value: String,
    },
    /// A file of the internal storage, sent as `file_name`.
    File {
        name: String,
        file_name: String,
        uri: crate::storage::Uri,
    },
}

/// The form `rendered` (`formData`) is, as Kestra sends it: multipart
/// when `content_type` says `multipart/form-data` (a `kestra://` value is
/// a file, so is a `{name, content}` map, the file `content` sent as
/// `name`; any other value is text, JSON when not a string), else
/// URL-encoded.
fn form(
    ctx: &TaskContext<'_>,
    rendered: Value,
    content_type: Option<&str>,
) -> Result<Form, String> {
    let Value::Object(map) = rendered else {
        return Err(format!("`formData` `{rendered}` is not a map"));
    };
    let multipart = content_type.is_some_and(|c| {
        c.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("multipart/form-data"))
    });
    if !multipart {
        return Ok(Form::Encoded(
            map.into_iter().map(|(k, v)| (k, into_text(v))).collect(),
        ));
    }
    let mut parts = Vec::with_capacity(map.len());
    for (name, value) in map {
        let part = match value {
            Value::String(s) if s.starts_with(crate::storage::SCHEME) => {
                let uri = ctx.readable_uri(&s, "formData")?;
                FormPart::File {
                    name,
                    file_name: uri.file_name().to_owned(),
                    uri,
                }
            }
            Value::Object(file) if file.contains_key("name") && file.contains_key("content") => {
                let file_name = into_text(file["name"].clone());
                let uri = ctx.readable_uri(&into_text(file["content"].clone()), "formData")?;
                FormPart::File {
                    name,
                    file_name,
                    uri,
                }
            }
            Value::String(value) => FormPart::Text { name, value },
            other => FormPart::Text {
                name,
                value: other.to_string(),
            },
        };
        parts.push(part);
    }
    Ok(Form::Multipart(parts))
}

/// `text` as a value of a URL-encoded form.
fn form_encoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char);
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// `text` quoted for a multipart header.
fn quoted(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(['\r', '\n'], " ")
}

impl Form {
    /// The body, its content type and its length, files read from the
    /// storage as they are sent.
    fn body(&self, env: &WorkerEnv) -> Result<(ureq::SendBody<'static>, String, u64), String> {
        match self {
            Form::Encoded(pairs) => {
                let text = pairs
                    .iter()
                    .map(|(k, v)| format!("{}={}", form_encoded(k), form_encoded(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                let len = text.len() as u64;
                Ok((
                    ureq::SendBody::from_owned_reader(std::io::Cursor::new(text.into_bytes())),
                    "application/x-www-form-urlencoded".to_owned(),
                    len,
                ))
            }
            Form::Multipart(parts) => {
                let boundary = format!("peregrine-{}", crate::execution::ExecutionId::generate());
                let mut readers: Vec<Box<dyn std::io::Read + Send>> = Vec::new();
                let mut len = 0u64;
                type Readers = Vec<Box<dyn std::io::Read + Send>>;
                fn text(t: String, readers: &mut Readers, len: &mut u64) {
                    *len += t.len() as u64;
                    readers.push(Box::new(std::io::Cursor::new(t.into_bytes())));
                }
                for part in parts {
                    match part {
                        FormPart::Text { name, value } => text(
                            format!(
                                "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{value}\r\n",
                                quoted(name)
                            ),
                            &mut readers,
                            &mut len,
                        ),
                        FormPart::File {
                            name,
                            file_name,
                            uri,
                        } => {
                            let files = env.files.as_ref().ok_or_else(|| {
                                "this engine has no internal storage: a file in `formData` needs a server"
                                    .to_owned()
                            })?;
                            let size = files
                                .storage()
                                .size(uri)
                                .map_err(|e| e.to_string())?
                                .ok_or_else(|| format!("File '{uri}' does not exist"))?;
                            text(
                                format!(
                                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                                    quoted(name),
                                    quoted(file_name)
                                ),
                                &mut readers,
                                &mut len,
                            );
                            let file = files.storage().open(uri).map_err(|e| e.to_string())?;
                            len += size;
                            readers.push(Box::new(std::io::Read::take(file, size)));
                            text("\r\n".to_owned(), &mut readers, &mut len);
                        }
                    }
                }
                text(format!("--{boundary}--\r\n"), &mut readers, &mut len);
                let body = readers
                    .into_iter()
                    .reduce(|a, b| Box::new(std::io::Read::chain(a, b)))
                    .unwrap_or_else(|| Box::new(std::io::empty()));
                Ok((
                    ureq::SendBody::from_owned_reader(body),
                    format!("multipart/form-data; boundary={boundary}"),
                    len,
                ))
            }
        }
    }
}

/// Sends `body` as `builder` says, within `timeout`.
fn send(
    agent: &ureq::Agent,
    builder: ureq::http::request::Builder,
    body: impl ureq::AsSendBody,
    timeout: Option<Duration>,
    uri: &str,
) -> Result<ureq::http::Response<ureq::Body>, String> {
    let request = builder
        .body(body)
        .map_err(|e| format!("invalid request to `{uri}`: {e}"))?;
    let mut config = agent.configure_request(request);
    if let Some(timeout) = timeout {
        config = config.timeout_global(Some(timeout));
    }
    agent
        .run(config.build())
        .map_err(|e| format!("HTTP request to `{uri}` failed: {e}"))
}

/// One rendered HTTP call.
#[derive(Debug, Clone, PartialEq)]
struct Call {
    method: String,
    uri: String,
    body: Option<String>,
    form: Option<Form>,
    content_type: Option<String>,
    headers: Vec<(String, String)>,
    timeout: Option<Duration>,
    allow_failed: bool,
    /// A Download's task run, and `failOnEmptyResponse`.
    download: Option<(super::Place, bool)>,
}

/// The name a download is stored under: the answer's Content-Disposition
/// file name, else the URL's last segment, else `download`.
fn download_name(url: &str, headers: &Map<String, Value>) -> String {
    let from_header = headers
        .get("content-disposition")
        .and_then(|v| v.get(0))
        .and_then(Value::as_str)
        .and_then(|d| {
            d.split(';').find_map(|part| {
                let part = part.trim();
                part.strip_prefix("filename=")
                    .map(|f| f.trim_matches('"').to_owned())
            })
        });
    let from_url = || {
        let path = url.split(['?', '#']).next().unwrap_or("");
        let path = path.split_once("://").map_or(path, |(_, rest)| rest);
        path.split_once('/')
            .and_then(|(_, p)| p.rsplit('/').next())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let name = from_header.or_else(from_url).unwrap_or_default();
    let name = name.rsplit(['/', '\\']).next().unwrap_or("").to_owned();
    let clean: String = name
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    if clean.is_empty() || clean.starts_with('.') {
        "download".to_owned()
    } else {
        clean
    }
}

/// The agent every worker shares (pooled connections, default timeout).
pub(super) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(DEFAULT_TIMEOUT))
        .build()
        .into()
}

impl Job for Call {
    fn run(self: Box<Self>, env: &WorkerEnv, within: Option<Duration>) -> Answer {
        match (*self).work(env, within) {
            Ok((outputs, metric)) => Answer {
                metrics: metric.into_iter().collect(),
                ..Answer::from(Ok(outputs))
            },
            Err(e) => Err(e).into(),
        }
    }
}

impl Call {
    /// Its outputs, and Kestra's `response.length` metric (tagged with the
    /// request's method, and a Request's response code): a download's
    /// size, a Request's `Content-Length` when its answer has one.
    fn work(
        self,
        env: &WorkerEnv,
        within: Option<Duration>,
    ) -> Result<(Value, Option<JobMetric>), String> {
        let call = self;
        let agent = &env.http;
        let method = ureq::http::Method::from_bytes(call.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("`{}` is not an HTTP method", call.method))?;
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(call.uri.as_str());
        for (name, value) in &call.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let timeout = match (call.timeout, within) {
            (Some(own), Some(within)) => Some(own.min(within)),
            (own, within) => own.or(within),
        };
        // A form is sent in place of `body`, with its own content type
        // (a multipart one names its boundary) and length.
        let mut response = match &call.form {
            Some(form) => {
                let (body, content_type, len) = form.body(env)?;
                let given = call
                    .content_type
                    .clone()
                    .filter(|c| !c.contains("multipart"));
                let builder = builder
                    .header("content-type", given.unwrap_or(content_type))
                    .header("content-length", len.to_string());
                send(agent, builder, body, timeout, &call.uri)?
            }
            None => {
                if let Some(content_type) = &call.content_type {
                    builder = builder.header("content-type", content_type.as_str());
                }
                let body = call.body.clone().unwrap_or_default().into_bytes();
                send(agent, builder, body, timeout, &call.uri)?
            }
        };
        let code = response.status().as_u16();
        let mut headers = Map::new();
        for (name, value) in response.headers() {
            let value = Value::from(value.to_str().unwrap_or_default());
            match headers
                .entry(name.as_str().to_owned())
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                Value::Array(values) => values.push(value),
                other => *other = Value::Array(vec![value]),
            }
        }
        if let Some((place, fail_on_empty)) = &call.download {
            if code >= 400 && !call.allow_failed {
                return Err(format!(
                    "Failed http request with response code '{code}' from `{}`",
                    call.uri
                ));
            }
            let files = env
                .files
                .as_ref()
                .ok_or("this engine has no internal storage: Download needs a server".to_owned())?;
            let name = download_name(&call.uri, &headers);
            let uri = place.file(&format!("{}-{name}", place.attempt))?;
            let limit = files.max_file_bytes();
            let mut body = response.body_mut().with_config().limit(limit + 1).reader();
            let length = files
                .storage()
                .put(&uri, &mut body, limit)
                .map_err(|e| format!("downloading `{}`: {e}", call.uri))?;
            if length == 0 && *fail_on_empty && !call.allow_failed {
                let _ = files.storage().delete(&uri);
                return Err(format!("No response from server `{}`", call.uri));
            }
            let tags = [("request.method", call.method.to_ascii_uppercase())];
            let metric = JobMetric::counter("response.length", length as f64, &tags);
            return Ok((
                json!({
                    "uri": uri.to_string(),
                    "code": code,
                    "length": length,
                    "headers": headers,
                }),
                Some(metric),
            ));
        }
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_string()
            .map_err(|e| format!("reading the answer of `{}`: {e}", call.uri))?;
        if code >= 400 && !call.allow_failed {
            return Err(format!(
                "Failed http request with response code '{code}' from `{}`",
                call.uri
            ));
        }
        let metric = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .map(|length| {
                let tags = [
                    ("request.method", call.method.to_ascii_uppercase()),
                    ("response.code", code.to_string()),
                ];
                JobMetric::counter("response.length", length as f64, &tags)
            });
        Ok((
            json!({
                "uri": call.uri,
                "code": code,
                "headers": headers,
                "body": text,
            }),
            metric,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use super::*;
    use crate::execution::State;
    use crate::flow::Level;
    use crate::tasks::testing::{flow, kind, logs_of, only, problems, run};

    /// A loopback server that answers `answers` requests, one each, with
    /// `status` and `body`; sends back each request's head and body.
    fn serve(
        status: u16,
        body: &'static str,
        answers: usize,
    ) -> (String, std::sync::mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = listener.local_addr().expect("its address");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(answers) {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("a stream"));
                let mut seen = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    seen.push_str(&line);
                }
                let mut buf = vec![0; length];
                let _ = reader.read_exact(&mut buf);
                seen.push_str(&String::from_utf8_lossy(&buf));
                let _ = tx.send(seen);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nx-answer: a\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (format!("http://{addr}"), rx)
    }

    fn request(base: &str, extra: &str) -> String {
        format!(
            "  - id: call
    type: io.kestra.plugin.core.http.Request
    uri: \"{base}/items/{{{{ flow.id }}}}\"
{extra}"
        )
    }

    #[test]
    fn properties_are_read() {
        let parsed = flow(&request(
            "http://x",
            "    method: PUT\n    options:\n      readTimeout: PT2S\n      allowFailed: true\n",
        ));
        let call = kind::<Request>(&parsed, "call");
        assert_eq!(call.read_timeout, Some(Duration::from_secs(2)));
        assert!(call.allow_failed);
        let parsed = flow(&request("http://x", ""));
        let call = kind::<Request>(&parsed, "call");
        assert!((call.read_timeout, call.allow_failed) == (None, false));
        assert_eq!(
            problems(&request(
                "http://x",
                "    options:\n      readTimeout: soon\n"
            )),
            [
                "tasks[0].options.readTimeout at 8:7: `soon` is not an ISO-8601 duration (e.g. PT30S)"
            ]
        );
        // Options Peregrine does not honour are refused, not ignored.
        assert_eq!(
            problems(&request(
                "http://x",
                "    options:\n      followRedirects: false\n      allowFailed: \"yes\"\n"
            )),
            [
                "tasks[0].options.followRedirects at 8:7: HTTP option `followRedirects` is not supported yet",
                "tasks[0].options.allowFailed at 8:7: expected true or false",
            ]
        );
        assert_eq!(
            problems("  - id: call\n    type: io.kestra.plugin.fs.http.Request\n"),
            ["tasks[0].uri at 4:5: missing required property `uri`"]
        );
    }

    #[test]
    fn the_call_is_rendered_and_its_answer_is_the_output() {
        let (base, seen) = serve(201, "made", 1);
        let exec = run(&request(
            &base,
            "    method: post\n    body: \"{{ 40 + 2 }}\"\n    contentType: text/plain\n    headers:\n      x-flow: \"{{ flow.namespace }}\"\n",
        ));
        assert_eq!(exec.state(), State::Success, "{:?}", exec.logs().entries());
        let outputs = only(&exec, "call").outputs().expect("outputs");
        assert_eq!(outputs["code"], 201);
        assert_eq!(outputs["body"], "made");
        assert_eq!(outputs["uri"], format!("{base}/items/t"));
        assert_eq!(outputs["headers"]["x-answer"], serde_json::json!(["a"]));
        // Kestra's metric of the answer's length.
        let metrics = exec.metrics().entries();
        assert_eq!(metrics.len(), 1, "{metrics:?}");
        assert_eq!(
            (
                metrics[0].name.as_str(),
                metrics[0].value,
                &*metrics[0].task_id
            ),
            ("response.length", 4.0, "call")
        );
        assert_eq!(
            metrics[0].tags,
            [
                ("request.method".to_owned(), "POST".to_owned()),
                ("response.code".to_owned(), "201".to_owned())
            ]
        );
        let request = seen.recv().expect("the request");
        assert!(
            request.starts_with("POST /items/t HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("x-flow: tests\r\n"), "{request}");
        assert!(
            request.contains("content-type: text/plain\r\n"),
            "{request}"
        );
        assert!(request.ends_with("\r\n42"), "{request}");
    }

    #[test]
    fn an_error_status_fails_the_task_unless_allowed() {
        let (base, _seen) = serve(404, "gone", 2);
        let exec = run(&request(&base, ""));
        assert_eq!(exec.state(), State::Failed);
        let call = only(&exec, "call");
        assert_eq!(call.attempts().len(), 1);
        assert_eq!(call.outputs(), Some(&serde_json::json!({})));
        assert_eq!(
            logs_of(&exec, "call"),
            [(
                Level::Error,
                format!("Failed http request with response code '404' from `{base}/items/t`")
            )]
        );

        let exec = run(&request(&base, "    options:\n      allowFailed: true\n"));
        assert_eq!(exec.state(), State::Success);
        assert_eq!(only(&exec, "call").outputs().expect("outputs")["code"], 404);
    }

    #[test]
    fn a_property_that_does_not_render_fails_before_any_call() {
        let exec = run(&request(
            "http://127.0.0.1:9",
            "    headers: \"{{ 'text' }}\"\n",
        ));
        assert_eq!(exec.state(), State::Failed);
        assert_eq!(
            logs_of(&exec, "call"),
            [(Level::Error, "headers `\"text\"` is not a map".to_owned())]
        );
        let exec = run(&request(
            "http://127.0.0.1:9",
            "    method: \"NOT A METHOD\"\n",
        ));
        assert_eq!(
            logs_of(&exec, "call"),
            [(
                Level::Error,
                "`NOT A METHOD` is not an HTTP method".to_owned()
            )]
        );
    }

    #[test]
    fn a_download_streams_the_body_into_the_storage() {
        use crate::storage::{Files, LocalStorage, Uri};
        let dir = tempfile::tempdir().expect("a dir");
        let store = LocalStorage::open(dir.path()).expect("storage");
        let variables = crate::executor::ConfigVariables::default().with_files(Files::new(
            store.clone(),
            dir.path().join("work"),
            1 << 20,
        ));
        let (base, _seen) = serve(200, "hello body", 1);
        let (empty, _) = serve(200, "", 1);
        let exec = crate::tasks::testing::run_with_variables(
            &format!(
                r#"
  - id: get
    type: io.kestra.plugin.core.http.Download
    uri: {base}/files/report.csv?x=1
  - id: nothing
    type: io.kestra.plugin.core.http.Download
    uri: {empty}/
"#
            ),
            variables,
        );
        let get = only(&exec, "get").outputs().expect("outputs").clone();
        assert_eq!(get["code"], 200);
        assert_eq!(get["length"], 10);
        let lengths: Vec<(&str, f64)> = exec
            .metrics()
            .entries()
            .iter()
            .map(|m| (&*m.task_id, m.value))
            .collect();
        assert_eq!(lengths, [("get", 10.0)], "the failed download records none");
        let uri = Uri::parse(get["uri"].as_str().expect("a uri")).expect("a uri");
        assert!(uri.file_name().ends_with("report.csv"), "{uri}");
        assert_eq!(
            crate::storage::read_to_string(&*store, &uri, 100).expect("the file"),
            "hello body"
        );
        assert_eq!(only(&exec, "nothing").state(), State::Failed);
        assert!(
            logs_of(&exec, "nothing")
                .iter()
                .any(|(_, m)| m.contains("No response from server"))
        );
    }

    #[test]
    fn form_data_is_sent_url_encoded_or_as_multipart_with_files_of_the_storage() {
        use crate::storage::{Files, LocalStorage};
        let dir = tempfile::tempdir().expect("a dir");
        let store = LocalStorage::open(dir.path().join("storage")).expect("a storage");
        let files = Files::new(store, dir.path().join("work"), 1 << 20);
        let variables = crate::executor::ConfigVariables::default().with_files(files);
        let (base, seen) = serve(200, "ok", 2);
        let exec = crate::tasks::testing::run_with_variables(
            &format!(
                r#"
  - id: file
    type: io.kestra.plugin.core.storage.Write
    content: "a,b\n1,2\n"
    extension: .csv
  - id: encoded
    type: io.kestra.plugin.core.http.Request
    uri: {base}/form
    method: POST
    formData:
      hello: "big world & {{{{ flow.id }}}}"
      n: 42
  - id: multipart
    type: io.kestra.plugin.core.http.Request
    uri: {base}/upload
    method: POST
    contentType: multipart/form-data
    formData:
      hello: world
      data: "{{{{ outputs.file.uri }}}}"
      named:
        name: report.csv
        content: "{{{{ outputs.file.uri }}}}"
      list: [1, 2]
"#
            ),
            variables,
        );
        assert_eq!(exec.state(), State::Success, "{:?}", exec.logs().entries());
        let encoded = seen.recv().expect("the first request");
        assert!(
            encoded
                .to_ascii_lowercase()
                .contains("content-type: application/x-www-form-urlencoded"),
            "{encoded}"
        );
        assert!(
            encoded.ends_with("\r\nhello=big+world+%26+t&n=42"),
            "{encoded}"
        );
        let multipart = seen.recv().expect("the second request");
        let prefix = "content-type: multipart/form-data; boundary=";
        let boundary = multipart
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with(prefix))
            .map(|l| l[prefix.len()..].to_owned())
            .expect("a multipart content type with its boundary");
        let body = &multipart[multipart.find(&format!("--{boundary}")).expect("a body")..];
        let parts: Vec<&str> = body.split(&format!("--{boundary}")).collect();
        assert_eq!(
            parts.len(),
            6,
            "four parts, between five boundaries: {body}"
        );
        assert!(
            parts[1].contains("name=\"hello\"") && parts[1].ends_with("\r\n\r\nworld\r\n"),
            "{}",
            parts[1]
        );
        assert!(
            parts[2].contains("name=\"data\"; filename=\"1-write.csv\"")
                && parts[2].ends_with("\r\n\r\na,b\n1,2\n\r\n"),
            "{}",
            parts[2]
        );
        assert!(
            parts[3].contains("name=\"named\"; filename=\"report.csv\""),
            "{}",
            parts[3]
        );
        assert!(parts[4].ends_with("\r\n\r\n[1,2]\r\n"), "{}", parts[4]);
        assert_eq!(parts[5], "--\r\n");
    }

    #[test]
    fn a_form_file_this_execution_may_not_read_fails_the_task() {
        let exec = run(&request(
            "http://127.0.0.1:9",
            "    contentType: multipart/form-data\n    formData:\n      f: kestra:///a/b/executions/1aBcDeFgHiJkLmNoPqRsTu/inputs/x/y.txt\n",
        ));
        assert_eq!(only(&exec, "call").state(), State::Failed);
        assert!(
            logs_of(&exec, "call")
                .iter()
                .any(|(_, m)| m.contains("didn't belong to the current execution")),
            "{:?}",
            logs_of(&exec, "call")
        );
    }
}
