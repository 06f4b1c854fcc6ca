//! The data path's one error type, and the one mapping from what went wrong
//! to the gateway response the client sees.
//!
//! Every failure in `serve_request` becomes a [`GatewayError`]; the
//! connection loop hands it to [`response_type`]. That `match` has no
//! wildcard arm on purpose: a new kind does not compile until someone
//! decides which response (and so which status) it gets.

use std::borrow::Cow;

use crate::gateway_response::ResponseType;

/// Who caused the failure: decides logging level and whether the backend is
/// to blame in metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The client sent something we refuse.
    Downstream,
    /// The backend failed or was unreachable.
    Upstream,
    /// The API definition cannot serve this request.
    Config,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No API, stage, resource or method matched.
    NoRoute,
    /// The method has no `x-amazon-apigateway-integration`.
    NoIntegration,
    /// An integration type or URI scheme this gateway cannot call.
    UnsupportedIntegration,
    /// The integration URI needs a stage variable the stage does not set,
    /// or its host is not a valid authority once filled in.
    BadIntegrationUri,
    /// No integration response matched and there is no default one.
    NoIntegrationResponse,
    /// A MOCK request template did not yield a `statusCode`.
    MockStatusMissing,
    /// The request body is larger than the limit.
    BodyTooLarge,
    /// No request template for the content type and passthrough refused.
    UnsupportedMediaType,
    /// The backend did not answer within `timeoutInMillis`.
    UpstreamTimeout,
    /// Connecting to the backend failed (refused, unreachable).
    UpstreamConnect,
    /// The TLS handshake with the backend failed (certificate not trusted,
    /// wrong name, no common protocol).
    UpstreamTls,
    /// The backend closed or reset the connection before a full response.
    UpstreamReset,
    /// The backend's response could not be parsed.
    UpstreamMalformed,
    /// The backend host name has no address (DNS).
    UpstreamUnresolved,
    /// A method that requires an API key got none, or one that is unknown
    /// or not in a usage plan of this stage.
    InvalidApiKey,
    /// A rate limit (usage plan, method, stage, account) or the in-flight
    /// cap.
    Throttled,
    /// A usage plan's quota for the period is used up.
    QuotaExceeded,
    /// `Cache-Control: max-age=0` from a client not allowed to invalidate,
    /// with the FAIL_WITH_403 strategy.
    InvalidateNotAllowed,
    /// A mapping template read a body that is not JSON.
    TemplateBadBody,
    /// A mapping template failed (budget, runtime error, bad override).
    TemplateFailed,
    /// Method request validation: a required parameter is missing or blank.
    BadRequestParameters,
    /// Method request validation: the body does not match its model.
    BadRequestBody,
    /// An `AWS_IAM` method without an `Authorization` header.
    MissingCredentials,
    /// An `AWS_IAM` method: a signature that is malformed, by an unknown
    /// access key, or that does not match.
    InvalidSignature,
    /// An `AWS_IAM` method: a signature outside the clock-skew window.
    ExpiredSignature,
    /// The caller is known but may not invoke this method (an IAM
    /// credential without `invoke`, an authorizer's policy).
    AccessDenied,
    /// An authorizer's identity source is missing or empty, or the token
    /// fails `identityValidationExpression`, or the authorizer said so.
    Unauthorized,
    /// The authorizer cannot be run (no endpoint for its function, an
    /// answer that is not an authorizer's output).
    AuthorizerConfiguration,
    /// The authorizer failed (unreachable, error status, timeout).
    AuthorizerFailure,
}

#[derive(Clone, Debug)]
pub struct GatewayError {
    pub kind: ErrorKind,
    pub side: Side,
    /// May the request be sent again (on a fresh upstream connection)?
    pub retryable: bool,
    /// For logs: what exactly happened.
    pub detail: Cow<'static, str>,
    /// A message for the client other than the type's default
    /// (`Missing required request parameters: [a, b]`).
    pub client_message: Option<String>,
    /// `$context.error.validationErrorString`.
    pub validation: Option<String>,
}

impl GatewayError {
    pub fn new(kind: ErrorKind, detail: impl Into<Cow<'static, str>>) -> GatewayError {
        let side = match kind {
            ErrorKind::NoRoute
            | ErrorKind::BodyTooLarge
            | ErrorKind::UnsupportedMediaType
            | ErrorKind::InvalidApiKey
            | ErrorKind::Throttled
            | ErrorKind::QuotaExceeded
            | ErrorKind::InvalidateNotAllowed
            | ErrorKind::TemplateBadBody
            | ErrorKind::BadRequestParameters
            | ErrorKind::BadRequestBody
            | ErrorKind::MissingCredentials
            | ErrorKind::InvalidSignature
            | ErrorKind::ExpiredSignature
            | ErrorKind::AccessDenied
            | ErrorKind::Unauthorized => Side::Downstream,
            ErrorKind::NoIntegration
            | ErrorKind::UnsupportedIntegration
            | ErrorKind::BadIntegrationUri
            | ErrorKind::NoIntegrationResponse
            | ErrorKind::MockStatusMissing
            | ErrorKind::TemplateFailed
            | ErrorKind::AuthorizerConfiguration => Side::Config,
            ErrorKind::UpstreamTimeout
            | ErrorKind::UpstreamConnect
            | ErrorKind::UpstreamTls
            | ErrorKind::UpstreamReset
            | ErrorKind::UpstreamMalformed
            | ErrorKind::UpstreamUnresolved
            | ErrorKind::AuthorizerFailure => Side::Upstream,
        };
        GatewayError {
            kind,
            side,
            retryable: false,
            detail: detail.into(),
            client_message: None,
            validation: None,
        }
    }

    /// A method request validation failure, with AWS's message and detail.
    pub fn invalid(invalid: &crate::validate::Invalid) -> GatewayError {
        let kind = match invalid {
            crate::validate::Invalid::Parameters { .. } => ErrorKind::BadRequestParameters,
            crate::validate::Invalid::Body { .. } => ErrorKind::BadRequestBody,
        };
        let mut e = GatewayError::new(kind, invalid.message().to_owned());
        e.client_message = Some(invalid.message().to_owned());
        e.validation = Some(invalid.validation_error_string().to_owned());
        e
    }

    /// With a message for the client other than the type's default.
    pub fn telling(mut self, message: impl Into<String>) -> GatewayError {
        self.client_message = Some(message.into());
        self
    }

    pub fn retryable(mut self) -> GatewayError {
        self.retryable = true;
        self
    }

    pub fn response_type(&self) -> ResponseType {
        response_type(self.kind)
    }

    /// `$context.error.message`: what the client is told.
    pub fn message(&self) -> Option<&str> {
        if let Some(m) = &self.client_message {
            return Some(m);
        }
        match self.kind {
            ErrorKind::UpstreamConnect | ErrorKind::UpstreamTls | ErrorKind::UpstreamUnresolved => {
                Some("Network error communicating with endpoint")
            }
            ErrorKind::BodyTooLarge => Some("Request Too Long"),
            ErrorKind::TemplateBadBody => Some("Could not parse request body into json"),
            _ => self.response_type().default_message(),
        }
    }
}

/// The one mapping from error kind to gateway response type.
pub fn response_type(kind: ErrorKind) -> ResponseType {
    match kind {
        ErrorKind::NoRoute => ResponseType::MissingAuthenticationToken,
        ErrorKind::NoIntegration => ResponseType::ApiConfigurationError,
        ErrorKind::UnsupportedIntegration => ResponseType::ApiConfigurationError,
        ErrorKind::BadIntegrationUri => ResponseType::ApiConfigurationError,
        ErrorKind::NoIntegrationResponse => ResponseType::ApiConfigurationError,
        ErrorKind::MockStatusMissing => ResponseType::ApiConfigurationError,
        ErrorKind::BodyTooLarge => ResponseType::RequestTooLarge,
        ErrorKind::UnsupportedMediaType => ResponseType::UnsupportedMediaType,
        ErrorKind::UpstreamTimeout => ResponseType::IntegrationTimeout,
        ErrorKind::UpstreamConnect => ResponseType::IntegrationFailure,
        ErrorKind::UpstreamTls => ResponseType::IntegrationFailure,
        ErrorKind::UpstreamReset => ResponseType::IntegrationFailure,
        ErrorKind::UpstreamMalformed => ResponseType::IntegrationFailure,
        ErrorKind::UpstreamUnresolved => ResponseType::IntegrationFailure,
        ErrorKind::InvalidApiKey => ResponseType::InvalidApiKey,
        ErrorKind::Throttled => ResponseType::Throttled,
        ErrorKind::QuotaExceeded => ResponseType::QuotaExceeded,
        ErrorKind::InvalidateNotAllowed => ResponseType::AccessDenied,
        ErrorKind::TemplateBadBody => ResponseType::BadRequestBody,
        ErrorKind::TemplateFailed => ResponseType::ApiConfigurationError,
        ErrorKind::BadRequestParameters => ResponseType::BadRequestParameters,
        ErrorKind::BadRequestBody => ResponseType::BadRequestBody,
        ErrorKind::MissingCredentials => ResponseType::MissingAuthenticationToken,
        ErrorKind::InvalidSignature => ResponseType::InvalidSignature,
        ErrorKind::ExpiredSignature => ResponseType::ExpiredToken,
        ErrorKind::AccessDenied => ResponseType::AccessDenied,
        ErrorKind::Unauthorized => ResponseType::Unauthorized,
        ErrorKind::AuthorizerConfiguration => ResponseType::AuthorizerConfigurationError,
        ErrorKind::AuthorizerFailure => ResponseType::AuthorizerFailure,
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} ({:?}): {}", self.kind, self.side, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_as_aws() {
        let cases = [
            (ErrorKind::NoRoute, 403),
            (ErrorKind::UpstreamTimeout, 504),
            (ErrorKind::UpstreamConnect, 504),
            (ErrorKind::UpstreamTls, 504),
            (ErrorKind::UpstreamReset, 504),
            (ErrorKind::UpstreamMalformed, 504),
            (ErrorKind::BodyTooLarge, 413),
            (ErrorKind::NoIntegration, 500),
            (ErrorKind::UnsupportedMediaType, 415),
        ];
        for (kind, status) in cases {
            assert_eq!(response_type(kind).default_status(), status, "{kind:?}");
        }
        assert_eq!(
            GatewayError::new(ErrorKind::UpstreamTimeout, "x").message(),
            Some("Endpoint request timed out")
        );
    }
}
