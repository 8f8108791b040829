//! Every error the API answers with: a status and `{"message", "details"}`,
//! never internals (those go to the log).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::state::Refused;
use crate::store::FlowError;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    details: Value,
    /// Seconds, for 429 and 503.
    retry_after: Option<u32>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            details: Value::Null,
            retry_after: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    pub fn unprocessable(message: impl Into<String>, details: Value) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message).with_details(details)
    }

    /// Backpressure: come back in a second.
    pub fn too_many(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, message)
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(5),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    /// Something failed inside: logged in full, answered without detail.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!("{context}: {error}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Full => ApiError::too_many("the executor is at capacity; retry later"),
            Refused::TooMany(why) | Refused::Overloaded(why) => ApiError::too_many(why),
            Refused::Stopped => ApiError::unavailable("the server is shutting down"),
            Refused::NotDurable(why) => ApiError::internal("making a change durable", why),
            Refused::NoSpace => ApiError::unavailable(
                "the server's data folder is out of disk space: nothing new is accepted \
                 until space returns (what was refused did not happen); retry later",
            ),
        }
    }
}

impl From<FlowError> for ApiError {
    fn from(error: FlowError) -> Self {
        match error {
            FlowError::Exists(..) => ApiError::conflict(error.to_string()),
            FlowError::NotFound(..) => ApiError::not_found(error.to_string()),
            FlowError::Durability(e) => ApiError::internal("saving a flow", e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"message": self.message, "details": self.details});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A body, query or form that axum could not read: its status (400, 413,
/// 415...) with a JSON message.
pub fn rejection(status: StatusCode, text: String) -> ApiError {
    ApiError::new(status, text)
}
