//! Method authorization on the data path: `AWS_IAM` (SigV4 by a
//! credential of the config with `invoke`), Lambda authorizers and Cognito
//! user pool authorizers, checked after the route and before API keys, as
//! API Gateway does.
//!
//! What a request's head decides is decided before the body is read: a
//! missing or malformed signature, an unknown access key, an expired date,
//! a credential without `invoke`, a missing identity source. Only the
//! signature itself, which covers the body, waits for it ([`verify_iam`]).
//! Read first: [`check_head`].

use std::borrow::Cow;
use std::time::SystemTime;

use crate::auth::{AuthError, RequestParts};
use crate::error::{ErrorKind, GatewayError};
use crate::integration::RequestInfo;
use crate::snapshot::{IdentitySource, LambdaAuthorizer, MethodAuth, Snapshot, Stage};
use crate::template::{ContextVar, Values};

/// What the head-time check leaves for later.
pub enum Pending {
    /// Nothing: the method needs no authorization.
    Nothing,
    /// An `AWS_IAM` method: the signature, once the body is read.
    Signature,
}

/// The method ARN API Gateway passes to authorizers and names in IAM
/// refusals: `arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/PATH`,
/// with the path as requested (after the stage). A self-hosted gateway
/// has no region or account: they are `local` and `000000000000`.
pub fn method_arn(info: &RequestInfo<'_>) -> String {
    let api = info.api.map_or("", |a| a.id.as_str());
    let stage = info.stage.map_or("", |s| s.name.as_str());
    let rest = info.route.map_or("/", |r| r.rest);
    let rest = if rest.is_empty() { "/" } else { rest };
    format!(
        "arn:aws:execute-api:local:000000000000:{api}/{stage}/{}{rest}",
        info.head.method().as_str()
    )
}

/// The checks a method's authorization makes on the request head.
pub fn check_head(
    snap: &Snapshot,
    info: &RequestInfo<'_>,
    stage: &Stage,
    auth: &MethodAuth,
) -> Result<Pending, GatewayError> {
    match auth {
        MethodAuth::None => Ok(Pending::Nothing),
        MethodAuth::Iam => {
            let headers: Vec<(&[u8], &[u8])> = info.head.headers().collect();
            let parts = parts(info, &headers, &[]);
            let cred = crate::auth::sigv4_signer(
                &snap.credentials,
                &parts,
                "execute-api",
                SystemTime::now(),
            )
            .map_err(iam_error)?;
            if !cred.permissions.invoke {
                return Err(GatewayError::new(
                    ErrorKind::AccessDenied,
                    format!("credential `{}` has no `invoke` permission", cred.name),
                )
                .telling(format!(
                    "User: {} is not authorized to perform: execute-api:Invoke on resource: {}",
                    cred.name,
                    method_arn(info)
                )));
            }
            Ok(Pending::Signature)
        }
        MethodAuth::Lambda(a) => {
            identity(info, stage, a)?;
            Err(GatewayError::new(
                ErrorKind::AuthorizerConfiguration,
                format!(
                    "Lambda authorizer `{}`: no endpoint is configured for its function {}",
                    a.name,
                    a.function.as_deref().unwrap_or("(none)")
                ),
            ))
        }
        MethodAuth::Cognito(c) => {
            if info.header(&c.header).is_none_or(|v| v.trim().is_empty()) {
                return Err(GatewayError::new(
                    ErrorKind::Unauthorized,
                    format!("Cognito authorizer `{}`: no `{}` header", c.name, c.header),
                ));
            }
            Err(GatewayError::new(
                ErrorKind::AuthorizerConfiguration,
                format!(
                    "Cognito authorizer `{}`: this gateway cannot verify Cognito user pool tokens",
                    c.name
                ),
            ))
        }
    }
}

/// The signature of an `AWS_IAM` request, over its body.
pub fn verify_iam(
    snap: &Snapshot,
    info: &RequestInfo<'_>,
    body: &[u8],
) -> Result<(), GatewayError> {
    let headers: Vec<(&[u8], &[u8])> = info.head.headers().collect();
    let parts = parts(info, &headers, body);
    crate::auth::authenticate(&snap.credentials, &parts, "execute-api", SystemTime::now())
        .map(drop)
        .map_err(iam_error)
}

fn parts<'a>(
    info: &'a RequestInfo<'_>,
    headers: &'a [(&'a [u8], &'a [u8])],
    body: &'a [u8],
) -> RequestParts<'a> {
    RequestParts {
        method: info.head.method_bytes(),
        path: info.head.path(),
        query: info.head.query(),
        headers,
        body,
    }
}

fn iam_error(e: AuthError) -> GatewayError {
    let (kind, detail) = match &e {
        AuthError::Missing => (ErrorKind::MissingCredentials, "no Authorization header"),
        AuthError::Expired(_) => (ErrorKind::ExpiredSignature, "signature expired"),
        AuthError::Malformed(_) => (ErrorKind::InvalidSignature, "malformed Authorization"),
        AuthError::UnknownCredential => (ErrorKind::InvalidSignature, "unknown access key"),
        AuthError::BadSignature | AuthError::PayloadMismatch => {
            (ErrorKind::InvalidSignature, "signature does not match")
        }
    };
    let err = GatewayError::new(kind, detail);
    match e {
        AuthError::Missing => err,
        other => err.telling(other.aws_error().1),
    }
}

/// The values of a Lambda authorizer's identity sources; a missing or
/// empty one is 401 without calling the authorizer, and so is a token
/// that fails `identityValidationExpression`.
pub fn identity(
    info: &RequestInfo<'_>,
    stage: &Stage,
    a: &LambdaAuthorizer,
) -> Result<Vec<String>, GatewayError> {
    let mut values = Vec::with_capacity(a.sources.len());
    for src in &a.sources {
        let v: Option<Cow<'_, str>> = match src {
            IdentitySource::Header(n) => info.header(n),
            IdentitySource::Query(n) => info.query_param(n).map(Cow::Owned),
            IdentitySource::StageVar(n) => {
                stage.variables.get(n).map(|v| Cow::Borrowed(v.as_str()))
            }
            IdentitySource::Context(n) => info
                .context(&ContextVar::parse(n))
                .map(|v| Cow::Owned(v.into_owned())),
        };
        match v {
            Some(v) if !v.is_empty() => values.push(v.into_owned()),
            _ => {
                return Err(GatewayError::new(
                    ErrorKind::Unauthorized,
                    format!(
                        "authorizer `{}`: identity source {src:?} missing or empty",
                        a.name
                    ),
                ))
            }
        }
    }
    if let (Some(re), Some(token)) = (&a.validation, values.first()) {
        if !re.is_match(token) {
            return Err(GatewayError::new(
                ErrorKind::Unauthorized,
                format!(
                    "authorizer `{}`: token fails identityValidationExpression",
                    a.name
                ),
            ));
        }
    }
    Ok(values)
}
