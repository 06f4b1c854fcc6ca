//! Gateway responses: API Gateway's answers for requests that never reach
//! (or never come back from) an integration.
//!
//! Owns: the response types with their default status, message and
//! `x-amzn-ErrorType`; the customisations from
//! `x-amazon-apigateway-gateway-responses`, resolved with API Gateway's
//! fallback (the type itself → `DEFAULT_4XX`/`DEFAULT_5XX` → built-in) and
//! pre-rendered per stage when a snapshot is compiled.
//! Read first: [`ResponseType`], then [`GatewayResponses::for_stage`].

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::template::{self, ContextVar, Piece, StageValues, Values};

/// Every gateway response type of REST APIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResponseType {
    AccessDenied,
    ApiConfigurationError,
    AuthorizerConfigurationError,
    AuthorizerFailure,
    BadRequestParameters,
    BadRequestBody,
    Default4xx,
    Default5xx,
    ExpiredToken,
    IntegrationFailure,
    IntegrationTimeout,
    InvalidApiKey,
    InvalidSignature,
    MissingAuthenticationToken,
    QuotaExceeded,
    RequestTooLarge,
    ResourceNotFound,
    Throttled,
    Unauthorized,
    UnsupportedMediaType,
    WafFiltered,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Client,
    Server,
}

impl ResponseType {
    pub const ALL: [ResponseType; 21] = [
        ResponseType::AccessDenied,
        ResponseType::ApiConfigurationError,
        ResponseType::AuthorizerConfigurationError,
        ResponseType::AuthorizerFailure,
        ResponseType::BadRequestParameters,
        ResponseType::BadRequestBody,
        ResponseType::Default4xx,
        ResponseType::Default5xx,
        ResponseType::ExpiredToken,
        ResponseType::IntegrationFailure,
        ResponseType::IntegrationTimeout,
        ResponseType::InvalidApiKey,
        ResponseType::InvalidSignature,
        ResponseType::MissingAuthenticationToken,
        ResponseType::QuotaExceeded,
        ResponseType::RequestTooLarge,
        ResponseType::ResourceNotFound,
        ResponseType::Throttled,
        ResponseType::Unauthorized,
        ResponseType::UnsupportedMediaType,
        ResponseType::WafFiltered,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            ResponseType::AccessDenied => "ACCESS_DENIED",
            ResponseType::ApiConfigurationError => "API_CONFIGURATION_ERROR",
            ResponseType::AuthorizerConfigurationError => "AUTHORIZER_CONFIGURATION_ERROR",
            ResponseType::AuthorizerFailure => "AUTHORIZER_FAILURE",
            ResponseType::BadRequestParameters => "BAD_REQUEST_PARAMETERS",
            ResponseType::BadRequestBody => "BAD_REQUEST_BODY",
            ResponseType::Default4xx => "DEFAULT_4XX",
            ResponseType::Default5xx => "DEFAULT_5XX",
            ResponseType::ExpiredToken => "EXPIRED_TOKEN",
            ResponseType::IntegrationFailure => "INTEGRATION_FAILURE",
            ResponseType::IntegrationTimeout => "INTEGRATION_TIMEOUT",
            ResponseType::InvalidApiKey => "INVALID_API_KEY",
            ResponseType::InvalidSignature => "INVALID_SIGNATURE",
            ResponseType::MissingAuthenticationToken => "MISSING_AUTHENTICATION_TOKEN",
            ResponseType::QuotaExceeded => "QUOTA_EXCEEDED",
            ResponseType::RequestTooLarge => "REQUEST_TOO_LARGE",
            ResponseType::ResourceNotFound => "RESOURCE_NOT_FOUND",
            ResponseType::Throttled => "THROTTLED",
            ResponseType::Unauthorized => "UNAUTHORIZED",
            ResponseType::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ResponseType::WafFiltered => "WAF_FILTERED",
        }
    }

    pub fn parse(name: &str) -> Option<ResponseType> {
        ResponseType::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// The status API Gateway uses when nothing is customised. The two
    /// `DEFAULT_*` types have none of their own.
    pub fn default_status(&self) -> u16 {
        match self {
            ResponseType::AccessDenied => 403,
            ResponseType::ApiConfigurationError => 500,
            ResponseType::AuthorizerConfigurationError => 500,
            ResponseType::AuthorizerFailure => 500,
            ResponseType::BadRequestParameters => 400,
            ResponseType::BadRequestBody => 400,
            ResponseType::Default4xx => 400,
            ResponseType::Default5xx => 500,
            ResponseType::ExpiredToken => 403,
            ResponseType::IntegrationFailure => 504,
            ResponseType::IntegrationTimeout => 504,
            ResponseType::InvalidApiKey => 403,
            ResponseType::InvalidSignature => 403,
            ResponseType::MissingAuthenticationToken => 403,
            ResponseType::QuotaExceeded => 429,
            ResponseType::RequestTooLarge => 413,
            ResponseType::ResourceNotFound => 404,
            ResponseType::Throttled => 429,
            ResponseType::Unauthorized => 401,
            ResponseType::UnsupportedMediaType => 415,
            ResponseType::WafFiltered => 403,
        }
    }

    /// `$context.error.message` when the error carries no message of its
    /// own. `None` renders as JSON `null`, as API Gateway does for the
    /// authorizer failures.
    pub fn default_message(&self) -> Option<&'static str> {
        match self {
            ResponseType::AccessDenied => Some("Forbidden"),
            ResponseType::ApiConfigurationError => Some("Internal server error"),
            ResponseType::AuthorizerConfigurationError => None,
            ResponseType::AuthorizerFailure => None,
            ResponseType::BadRequestParameters => Some("Missing required request parameters"),
            ResponseType::BadRequestBody => Some("Invalid request body"),
            ResponseType::Default4xx => Some("Bad Request"),
            ResponseType::Default5xx => Some("Internal server error"),
            ResponseType::ExpiredToken => {
                Some("The security token included in the request is expired")
            }
            ResponseType::IntegrationFailure => Some("Internal server error"),
            ResponseType::IntegrationTimeout => Some("Endpoint request timed out"),
            ResponseType::InvalidApiKey => Some("Forbidden"),
            ResponseType::InvalidSignature => Some(
                "The request signature we calculated does not match the signature you provided",
            ),
            ResponseType::MissingAuthenticationToken => Some("Missing Authentication Token"),
            ResponseType::QuotaExceeded => Some("Limit Exceeded"),
            ResponseType::RequestTooLarge => Some("Request Too Long"),
            ResponseType::ResourceNotFound => Some("Not Found"),
            ResponseType::Throttled => Some("Too Many Requests"),
            ResponseType::Unauthorized => Some("Unauthorized"),
            ResponseType::UnsupportedMediaType => Some("Unsupported Media Type"),
            ResponseType::WafFiltered => Some("Forbidden"),
        }
    }

    /// The `x-amzn-ErrorType` header value.
    pub fn error_type(&self) -> &'static str {
        match self {
            ResponseType::AccessDenied => "AccessDeniedException",
            ResponseType::ApiConfigurationError => "InternalServerErrorException",
            ResponseType::AuthorizerConfigurationError => "AuthorizerConfigurationException",
            ResponseType::AuthorizerFailure => "AuthorizerFailureException",
            ResponseType::BadRequestParameters => "BadRequestException",
            ResponseType::BadRequestBody => "BadRequestException",
            ResponseType::Default4xx => "BadRequestException",
            ResponseType::Default5xx => "InternalServerErrorException",
            ResponseType::ExpiredToken => "InvalidSignatureException",
            ResponseType::IntegrationFailure => "InternalServerErrorException",
            ResponseType::IntegrationTimeout => "InternalServerErrorException",
            ResponseType::InvalidApiKey => "ForbiddenException",
            ResponseType::InvalidSignature => "InvalidSignatureException",
            ResponseType::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            ResponseType::QuotaExceeded => "LimitExceededException",
            ResponseType::RequestTooLarge => "RequestTooLongException",
            ResponseType::ResourceNotFound => "NotFoundException",
            ResponseType::Throttled => "TooManyRequestsException",
            ResponseType::Unauthorized => "UnauthorizedException",
            ResponseType::UnsupportedMediaType => "UnsupportedMediaTypeException",
            ResponseType::WafFiltered => "WAFFilteredException",
        }
    }

    pub fn family(&self) -> Family {
        if self.default_status() >= 500 {
            Family::Server
        } else {
            Family::Client
        }
    }

    /// API Gateway does not let REQUEST_TOO_LARGE be customised.
    pub fn customisable(&self) -> bool {
        !matches!(self, ResponseType::RequestTooLarge)
    }
}

/// Where a customised header takes its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderSource {
    Literal(String),
    RequestHeader(String),
    RequestQuery(String),
    RequestPath(String),
    StageVar(String),
    Context(ContextVar),
}

/// One entry of `x-amazon-apigateway-gateway-responses`, compiled.
#[derive(Clone, Debug, Default)]
pub struct ResponseDef {
    pub status: Option<u16>,
    pub headers: Vec<(String, HeaderSource)>,
    /// Content type → template, in document order.
    pub templates: Vec<(String, Vec<Piece>)>,
}

/// The customisations of one API.
#[derive(Clone, Debug, Default)]
pub struct GatewayResponses {
    pub custom: BTreeMap<ResponseType, ResponseDef>,
}

/// A header value of a rendered response: text, or looked up per request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderValue {
    Text(String),
    RequestHeader(String),
    RequestQuery(String),
    RequestPath(String),
    Context(ContextVar),
}

/// A gateway response ready to write: status and headers resolved, the body
/// baked for its stage.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub kind: ResponseType,
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, HeaderValue)>,
    pub body: Vec<Piece>,
}

/// The rendered responses of one stage (or of no stage at all), indexed by
/// `ResponseType as usize`.
#[derive(Clone, Debug)]
pub struct StageResponses {
    pub by_type: Vec<Rendered>,
}

impl StageResponses {
    pub fn get(&self, kind: ResponseType) -> &Rendered {
        // `by_type` is built from `ResponseType::ALL` in declaration order.
        &self.by_type[kind as usize]
    }
}

const DEFAULT_TEMPLATE: &str = "{\"message\":$context.error.messageString}";

impl GatewayResponses {
    /// Renders every type for one stage: fallback resolved, stage values
    /// baked in.
    pub fn for_stage(&self, values: &StageValues<'_>) -> StageResponses {
        let by_type = ResponseType::ALL
            .iter()
            .map(|&kind| self.render_one(kind, values))
            .collect();
        StageResponses { by_type }
    }

    /// The built-in responses, for requests that match no API or stage.
    pub fn builtin() -> StageResponses {
        let empty = BTreeMap::new();
        GatewayResponses::default().for_stage(&StageValues {
            stage: "",
            api_id: "",
            variables: &empty,
        })
    }

    fn effective(&self, kind: ResponseType) -> Option<&ResponseDef> {
        if !kind.customisable() {
            return None;
        }
        if let Some(def) = self.custom.get(&kind) {
            return Some(def);
        }
        let family = match kind.family() {
            Family::Client => ResponseType::Default4xx,
            Family::Server => ResponseType::Default5xx,
        };
        self.custom.get(&family)
    }

    fn render_one(&self, kind: ResponseType, values: &StageValues<'_>) -> Rendered {
        let def = self.effective(kind);
        let status = def.and_then(|d| d.status).unwrap_or(kind.default_status());
        let (content_type, body) = match def.and_then(|d| d.templates.first()) {
            // Gateway responses have one body; with several templates the
            // JSON one wins, then the first.
            Some(_) => {
                let templates = &def.map(|d| d.templates.as_slice()).unwrap_or_default();
                let chosen = templates
                    .iter()
                    .find(|(ct, _)| ct.eq_ignore_ascii_case("application/json"))
                    .or_else(|| templates.first());
                match chosen {
                    Some((ct, pieces)) => (ct.clone(), template::bake(pieces, values)),
                    None => default_body(values),
                }
            }
            None => default_body(values),
        };
        let headers = def
            .map(|d| {
                d.headers
                    .iter()
                    .map(|(name, src)| (name.clone(), bake_header(src, values)))
                    .collect()
            })
            .unwrap_or_default();
        Rendered {
            kind,
            status,
            content_type,
            headers,
            body,
        }
    }
}

fn default_body(values: &StageValues<'_>) -> (String, Vec<Piece>) {
    (
        "application/json".to_owned(),
        template::bake(&template::parse(DEFAULT_TEMPLATE), values),
    )
}

fn bake_header(src: &HeaderSource, values: &StageValues<'_>) -> HeaderValue {
    match src {
        HeaderSource::Literal(s) => HeaderValue::Text(s.clone()),
        HeaderSource::StageVar(name) => HeaderValue::Text(
            values
                .stage_var(name)
                .map(Cow::into_owned)
                .unwrap_or_default(),
        ),
        HeaderSource::Context(c) => match values.context(c) {
            Some(v) => HeaderValue::Text(v.into_owned()),
            None => HeaderValue::Context(c.clone()),
        },
        HeaderSource::RequestHeader(n) => HeaderValue::RequestHeader(n.clone()),
        HeaderSource::RequestQuery(n) => HeaderValue::RequestQuery(n.clone()),
        HeaderSource::RequestPath(n) => HeaderValue::RequestPath(n.clone()),
    }
}

/// Quotes `s` as a JSON string, for `$context.error.messageString`.
pub fn json_quote(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Req;
    impl Values for Req {
        fn context(&self, var: &ContextVar) -> Option<Cow<'_, str>> {
            match var {
                ContextVar::ErrorMessageString => Some("\"Missing Authentication Token\"".into()),
                ContextVar::ErrorResponseType => Some("MISSING_AUTHENTICATION_TOKEN".into()),
                ContextVar::RequestId => Some("r-1".into()),
                _ => None,
            }
        }
        fn stage_var(&self, _: &str) -> Option<Cow<'_, str>> {
            None
        }
    }

    fn stage_values(vars: &BTreeMap<String, String>) -> StageValues<'_> {
        StageValues {
            stage: "prod",
            api_id: "api",
            variables: vars,
        }
    }

    fn body(r: &Rendered) -> String {
        let mut out = Vec::new();
        template::render(&r.body, &Req, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn builtin_defaults_table() {
        let b = GatewayResponses::builtin();
        let cases = [
            (ResponseType::MissingAuthenticationToken, 403),
            (ResponseType::IntegrationFailure, 504),
            (ResponseType::IntegrationTimeout, 504),
            (ResponseType::Throttled, 429),
            (ResponseType::QuotaExceeded, 429),
            (ResponseType::RequestTooLarge, 413),
            (ResponseType::UnsupportedMediaType, 415),
            (ResponseType::Unauthorized, 401),
            (ResponseType::ResourceNotFound, 404),
            (ResponseType::ApiConfigurationError, 500),
            (ResponseType::BadRequestBody, 400),
        ];
        for (kind, status) in cases {
            assert_eq!(b.get(kind).status, status, "{kind:?}");
            assert_eq!(b.get(kind).content_type, "application/json");
        }
        assert_eq!(
            body(b.get(ResponseType::MissingAuthenticationToken)),
            "{\"message\":\"Missing Authentication Token\"}"
        );
        for (i, kind) in ResponseType::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i);
            assert_eq!(ResponseType::parse(kind.name()), Some(*kind));
        }
    }

    #[test]
    fn customisation_and_fallback() {
        let mut g = GatewayResponses::default();
        g.custom.insert(
            ResponseType::MissingAuthenticationToken,
            ResponseDef {
                status: Some(404),
                headers: vec![
                    ("X-Stage".into(), HeaderSource::Context(ContextVar::Stage)),
                    ("X-Lit".into(), HeaderSource::Literal("a.b.c".into())),
                    ("X-Var".into(), HeaderSource::StageVar("color".into())),
                ],
                templates: vec![(
                    "application/json".into(),
                    template::parse("{\"message\": $context.error.messageString, \"type\": \"$context.error.responseType\", \"stage\": \"$context.stage\", \"v\": \"$stageVariables.color\"}"),
                )],
            },
        );
        g.custom.insert(
            ResponseType::Default5xx,
            ResponseDef {
                status: None,
                headers: vec![("X-Family".into(), HeaderSource::Literal("5xx".into()))],
                templates: vec![(
                    "text/plain".into(),
                    template::parse("oops $context.requestId"),
                )],
            },
        );
        g.custom.insert(
            ResponseType::Default4xx,
            ResponseDef {
                status: Some(418),
                ..Default::default()
            },
        );
        let vars = BTreeMap::from([("color".to_owned(), "blue".to_owned())]);
        let s = g.for_stage(&stage_values(&vars));
        let mat = s.get(ResponseType::MissingAuthenticationToken);
        assert_eq!(mat.status, 404);
        assert_eq!(
            body(mat),
            "{\"message\": \"Missing Authentication Token\", \"type\": \"MISSING_AUTHENTICATION_TOKEN\", \"stage\": \"prod\", \"v\": \"blue\"}"
        );
        assert_eq!(mat.headers[0].1, HeaderValue::Text("prod".into()));
        assert_eq!(mat.headers[2].1, HeaderValue::Text("blue".into()));
        // DEFAULT_5XX applies to 5xx types that are not customised, keeping their status.
        let timeout = s.get(ResponseType::IntegrationTimeout);
        assert_eq!(timeout.status, 504);
        assert_eq!(timeout.content_type, "text/plain");
        assert_eq!(body(timeout), "oops r-1");
        // DEFAULT_4XX with a status changes the status of uncustomised 4xx types.
        assert_eq!(s.get(ResponseType::Throttled).status, 418);
        // ... but never REQUEST_TOO_LARGE, which cannot be customised.
        assert_eq!(s.get(ResponseType::RequestTooLarge).status, 413);
    }
}
