//! Lambda authorizers, sans-IO: the event the gateway sends (API Gateway's
//! TOKEN and REQUEST event shapes), the output it reads back (principal,
//! IAM policy, context, usage key) and the policy's verdict for a method
//! ARN. The call itself is the shard's (`shard::authorize`).
//!
//! The policy is evaluated as IAM does for one action: an explicit `Deny`
//! that matches wins, then an `Allow` that matches, else an implicit deny.
//! Actions and resources match with `*` and `?` wildcards. A statement
//! this evaluator cannot read fully — one with a `Condition`, `NotAction`
//! or `NotResource` — never allows; as a `Deny` it denies whenever its
//! action and resource match (or, without them, always): unsure is no.
//! Read first: [`parse_output`], [`evaluate`].

use serde_json::{Map, Value};

/// What an authorizer returned, kept (and cached) per identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerOutput {
    pub principal_id: String,
    pub statements: Vec<Statement>,
    /// `context`: values stringified (`1` → `"1"`, `true` → `"true"`).
    pub context: Vec<(String, String)>,
    /// `usageIdentifierKey`: the API key, under
    /// `x-amazon-apigateway-api-key-source: AUTHORIZER`.
    pub usage_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub allow: bool,
    /// `Action` (empty: none given, or `NotAction`).
    pub actions: Vec<String>,
    /// `Resource` (empty: none given, or `NotResource`).
    pub resources: Vec<String>,
    /// A `Condition`, `NotAction` or `NotResource`: not evaluated here.
    pub opaque: bool,
}

/// The policy's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    ExplicitDeny,
    ImplicitDeny,
}

impl Verdict {
    /// The 403 message API Gateway gives for a denial.
    pub fn message(self) -> &'static str {
        match self {
            Verdict::ExplicitDeny => {
                "User is not authorized to access this resource with an explicit deny"
            }
            _ => "User is not authorized to access this resource",
        }
    }
}

/// Reads an authorizer's JSON output. `Err` says what is wrong with it
/// (API Gateway answers 500 AUTHORIZER_CONFIGURATION_ERROR).
pub fn parse_output(body: &[u8]) -> Result<AuthorizerOutput, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("output is not JSON: {e}"))?;
    let Some(o) = v.as_object() else {
        return Err("output is not a JSON object".into());
    };
    let principal_id = match o.get("principalId") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err("output has no principalId".into()),
    };
    let policy = match o.get("policyDocument") {
        Some(Value::Object(p)) => p,
        // Some SDKs serialise the policy as a string.
        Some(Value::String(s)) => {
            return parse_output_with_policy(
                o,
                principal_id,
                &serde_json::from_str(s).map_err(|e| format!("policyDocument is not JSON: {e}"))?,
            );
        }
        _ => return Err("output has no policyDocument".into()),
    };
    parse_output_with_policy(o, principal_id, &Value::Object(policy.clone()))
}

fn parse_output_with_policy(
    o: &Map<String, Value>,
    principal_id: String,
    policy: &Value,
) -> Result<AuthorizerOutput, String> {
    let statements = match policy.get("Statement") {
        Some(Value::Array(list)) => list.iter().map(statement).collect::<Result<Vec<_>, _>>()?,
        Some(s @ Value::Object(_)) => vec![statement(s)?],
        _ => return Err("policyDocument has no Statement".into()),
    };
    let mut context = Vec::new();
    match o.get("context") {
        None | Some(Value::Null) => {}
        Some(Value::Object(c)) => {
            for (k, v) in c {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    Value::Null => continue,
                    _ => {
                        return Err(format!(
                            "context.{k}: only strings, numbers and booleans are allowed"
                        ))
                    }
                };
                context.push((k.clone(), text));
            }
        }
        Some(_) => return Err("context is not a JSON object".into()),
    }
    let usage_key = match o.get("usageIdentifierKey") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("usageIdentifierKey is not a string".into()),
    };
    Ok(AuthorizerOutput {
        principal_id,
        statements,
        context,
        usage_key,
    })
}

fn strings(v: Option<&Value>, what: &str) -> Result<Vec<String>, String> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{what} holds a value that is not a string"))
            })
            .collect(),
        Some(_) => Err(format!("{what} is not a string or a list of strings")),
    }
}

fn statement(s: &Value) -> Result<Statement, String> {
    let allow = match s.get("Effect").and_then(Value::as_str) {
        Some(e) if e.eq_ignore_ascii_case("allow") => true,
        Some(e) if e.eq_ignore_ascii_case("deny") => false,
        _ => return Err("a Statement's Effect is not Allow or Deny".into()),
    };
    Ok(Statement {
        allow,
        actions: strings(s.get("Action"), "Action")?,
        resources: strings(s.get("Resource"), "Resource")?,
        opaque: s.get("Condition").is_some()
            || s.get("NotAction").is_some()
            || s.get("NotResource").is_some(),
    })
}

/// The policy's verdict on invoking `method_arn`.
pub fn evaluate(statements: &[Statement], method_arn: &str) -> Verdict {
    let action_matches = |s: &Statement| {
        s.actions.is_empty() && s.opaque
            || s.actions
                .iter()
                .any(|a| wildcard_match(&a.to_ascii_lowercase(), "execute-api:invoke"))
    };
    let resource_matches = |s: &Statement| {
        s.resources.is_empty() && s.opaque
            || s.resources.iter().any(|r| wildcard_match(r, method_arn))
    };
    let mut allowed = false;
    for s in statements {
        let matches = action_matches(s) && resource_matches(s);
        if !s.allow && matches {
            return Verdict::ExplicitDeny;
        }
        if s.allow && matches && !s.opaque {
            allowed = true;
        }
    }
    if allowed {
        Verdict::Allow
    } else {
        Verdict::ImplicitDeny
    }
}

/// IAM's wildcards: `*` any run of characters, `?` one character.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// A Cognito user pool as this gateway checks its tokens: its issuer and
/// the public keys of its JWKS (`/.well-known/jwks.json`, saved to a file).
pub struct UserPool {
    pub issuer: String,
    keys: Vec<(
        Option<String>,
        jsonwebtoken::DecodingKey,
        jsonwebtoken::Algorithm,
    )>,
}

impl std::fmt::Debug for UserPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserPool")
            .field("issuer", &self.issuer)
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// The issuer of a Cognito user pool's tokens, from its ARN
/// (`arn:aws:cognito-idp:REGION:ACCOUNT:userpool/POOL_ID`).
pub fn cognito_issuer(pool_arn: &str) -> Option<String> {
    let rest = pool_arn.strip_prefix("arn:aws:cognito-idp:")?;
    let (region, rest) = rest.split_once(':')?;
    let pool = rest.split_once(":userpool/")?.1;
    (!region.is_empty() && !pool.is_empty())
        .then(|| format!("https://cognito-idp.{region}.amazonaws.com/{pool}"))
}

impl UserPool {
    /// Reads a JWKS document (`{"keys": [...]}`). Keys that do not
    /// verify signatures — `use: enc`, `key_ops` without `verify`, an
    /// encryption `alg`, an `alg` that does not fit the key's type or
    /// curve, shared secrets (`oct`) — are left out and named in the
    /// second value (an identity provider's set often holds one); a set
    /// with no key left is an error.
    pub fn from_jwks(issuer: String, jwks: &[u8]) -> Result<(UserPool, Vec<String>), String> {
        use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, KeyOperations, PublicKeyUse};
        use jsonwebtoken::Algorithm as A;
        let doc: Value =
            serde_json::from_slice(jwks).map_err(|e| format!("not a JWKS document: {e}"))?;
        let Some(list) = doc.get("keys").and_then(Value::as_array) else {
            return Err("not a JWKS document: no `keys` list".into());
        };
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (i, raw) in list.iter().enumerate() {
            let jwk: jsonwebtoken::jwk::Jwk = match serde_json::from_value(raw.clone()) {
                Ok(k) => k,
                Err(e) => {
                    skipped.push(format!("keys[{i}]: {e}"));
                    continue;
                }
            };
            if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
                skipped.push(format!("keys[{i}]: not a signing key (`use`)"));
                continue;
            }
            if let Some(ops) = &jwk.common.key_operations {
                if !ops.contains(&KeyOperations::Verify) {
                    skipped.push(format!("keys[{i}]: `key_ops` without verify"));
                    continue;
                }
            }
            let declared = match &jwk.common.key_algorithm {
                Some(a) => match a.to_string().parse::<A>() {
                    Ok(a) => Some(a),
                    Err(_) => {
                        let name = raw.get("alg").and_then(Value::as_str).unwrap_or("?");
                        skipped.push(format!("keys[{i}]: `alg` {name} does not sign tokens"));
                        continue;
                    }
                },
                None => None,
            };
            // What the key's type can verify, and the declared `alg` only
            // if it is one of those.
            let alg = match (&jwk.algorithm, declared) {
                (AlgorithmParameters::RSA(_), None) => Some(A::RS256),
                (
                    AlgorithmParameters::RSA(_),
                    Some(a @ (A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512)),
                ) => Some(a),
                (AlgorithmParameters::EllipticCurve(p), d) => match (&p.curve, d) {
                    (EllipticCurve::P256, None | Some(A::ES256)) => Some(A::ES256),
                    (EllipticCurve::P384, None | Some(A::ES384)) => Some(A::ES384),
                    _ => None,
                },
                (AlgorithmParameters::OctetKeyPair(_), None | Some(A::EdDSA)) => Some(A::EdDSA),
                _ => None,
            };
            let Some(alg) = alg else {
                skipped.push(format!(
                    "keys[{i}]: its type and `alg` cannot verify a token"
                ));
                continue;
            };
            match jsonwebtoken::DecodingKey::from_jwk(&jwk) {
                Ok(key) => keys.push((jwk.common.key_id.clone(), key, alg)),
                Err(e) => skipped.push(format!("keys[{i}]: {e}")),
            }
        }
        if keys.is_empty() {
            return Err(if skipped.is_empty() {
                "the JWKS has no keys".into()
            } else {
                format!("no key verifies tokens ({})", skipped.join("; "))
            });
        }
        Ok((UserPool { issuer, keys }, skipped))
    }

    /// Checks a token as API Gateway's Cognito authorizer does: signed by
    /// one of the pool's keys (`kid`), issued by the pool, not expired
    /// (nor before `nbf`); without `scopes` an ID token, with them an
    /// access token holding at least one of them. The claims become
    /// `$context.authorizer.claims.NAME`.
    pub fn verify(&self, token: &str, scopes: &[String]) -> Result<AuthorizerOutput, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("not a JWT: {e}"))?;
        let (_, key, alg) = self
            .keys
            .iter()
            // By `kid`, as Cognito's tokens always name their key; a token
            // without one only matches a key without one.
            .find(|(kid, _, alg)| *alg == header.alg && *kid == header.kid)
            .ok_or_else(|| {
                format!(
                    "no key of the pool for kid {:?} and {:?}",
                    header.kid, header.alg
                )
            })?;
        let mut v = jsonwebtoken::Validation::new(*alg);
        v.set_issuer(&[&self.issuer]);
        v.validate_aud = false;
        v.validate_nbf = true;
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "iss"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &v)
            .map_err(|e| format!("token refused: {e}"))?;
        let claims = data.claims;
        // One issuer, a string (RFC 7519 §4.1.1); the library also takes a
        // list holding the right one.
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err("`iss` is not the pool's".into());
        }
        let token_use = claims.get("token_use").and_then(Value::as_str);
        if scopes.is_empty() {
            if token_use != Some("id") {
                return Err("an ID token is needed (token_use is not id)".into());
            }
        } else {
            if token_use != Some("access") {
                return Err("an access token is needed for a method with scopes".into());
            }
            let held = claims.get("scope").and_then(Value::as_str).unwrap_or("");
            if !held
                .split(' ')
                .any(|s| !s.is_empty() && scopes.iter().any(|w| w == s))
            {
                return Err(format!("the token has none of the scopes {scopes:?}"));
            }
        }
        let context = claims
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (format!("claims.{k}"), text)
            })
            .collect();
        Ok(AuthorizerOutput {
            principal_id: String::new(),
            statements: Vec::new(),
            context,
            usage_key: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:execute-api:local:000000000000:a/prod/GET/pets/1";

    fn out(policy: &str) -> AuthorizerOutput {
        parse_output(
            format!(r#"{{"principalId": "u1", "policyDocument": {{"Version": "2012-10-17", "Statement": {policy}}}}}"#)
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("arn:*/prod/*/*", ARN));
        assert!(wildcard_match(
            "arn:aws:execute-api:*:*:a/prod/GET/pets/?",
            ARN
        ));
        assert!(!wildcard_match(
            "arn:aws:execute-api:*:*:a/prod/POST/*",
            ARN
        ));
        assert!(!wildcard_match(
            "arn:aws:execute-api:*:*:a/prod/GET/pets",
            ARN
        ));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "aXXbYY"));
    }

    #[test]
    fn deny_wins_allow_needs_a_match() {
        let allow = r#"[{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "arn:aws:execute-api:*:*:a/prod/GET/*"}]"#;
        assert_eq!(evaluate(&out(allow).statements, ARN), Verdict::Allow);
        assert_eq!(
            evaluate(
                &out(allow).statements,
                "arn:aws:execute-api:local:000000000000:a/prod/POST/pets"
            ),
            Verdict::ImplicitDeny
        );
        let both = r#"[{"Effect": "Allow", "Action": "*", "Resource": "*"},
                       {"Effect": "Deny", "Action": ["execute-api:*"], "Resource": ["arn:*:a/prod/GET/pets/*"]}]"#;
        assert_eq!(evaluate(&out(both).statements, ARN), Verdict::ExplicitDeny);
        // A single statement object, and lower-case effect and action.
        let single = r#"{"Effect": "allow", "Action": "EXECUTE-API:invoke", "Resource": "*"}"#;
        assert_eq!(evaluate(&out(single).statements, ARN), Verdict::Allow);
        // Other actions do not allow invoking.
        let other =
            r#"[{"Effect": "Allow", "Action": "execute-api:InvalidateCache", "Resource": "*"}]"#;
        assert_eq!(evaluate(&out(other).statements, ARN), Verdict::ImplicitDeny);
    }

    #[test]
    fn what_cannot_be_evaluated_never_allows() {
        let conditional = r#"[{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]"#;
        assert_eq!(
            evaluate(&out(conditional).statements, ARN),
            Verdict::ImplicitDeny
        );
        let not_resource = r#"[{"Effect": "Allow", "Action": "*", "Resource": "*"},
                               {"Effect": "Deny", "NotAction": "s3:*", "NotResource": "arn:x"}]"#;
        assert_eq!(
            evaluate(&out(not_resource).statements, ARN),
            Verdict::ExplicitDeny
        );
    }

    #[test]
    fn outputs_are_checked() {
        let ok = parse_output(br#"{"principalId": "u1", "policyDocument": {"Statement": []}, "context": {"n": 1, "b": true, "s": "x"}, "usageIdentifierKey": "k1"}"#).unwrap();
        assert_eq!(
            ok.context,
            vec![
                ("n".to_owned(), "1".to_owned()),
                ("b".to_owned(), "true".to_owned()),
                ("s".to_owned(), "x".to_owned())
            ]
        );
        assert_eq!(ok.usage_key.as_deref(), Some("k1"));
        for bad in [
            &b"not json"[..],
            br#"[]"#,
            br#"{"policyDocument": {"Statement": []}}"#,
            br#"{"principalId": "u"}"#,
            br#"{"principalId": "u", "policyDocument": {}}"#,
            br#"{"principalId": "u", "policyDocument": {"Statement": [{"Effect": "Maybe"}]}}"#,
            br#"{"principalId": "u", "policyDocument": {"Statement": []}, "context": {"a": {"b": 1}}}"#,
        ] {
            assert!(parse_output(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_pools_issuer_is_read_from_its_arn() {
        assert_eq!(
            cognito_issuer("arn:aws:cognito-idp:eu-west-1:123:userpool/eu-west-1_Ab").as_deref(),
            Some("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Ab")
        );
        assert_eq!(
            cognito_issuer("arn:aws:cognito-idp:eu-west-1:123:pool/x"),
            None
        );
        assert_eq!(
            cognito_issuer("arn:aws:lambda:eu-west-1:123:userpool/x"),
            None
        );
    }
}
