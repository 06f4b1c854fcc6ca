//! Custom domain names and their base path mappings, as API Gateway's:
//! `Host: api.example.com` with a mapping of base path `v2` to API
//! `petstore`, stage `prod` serves `/v2/pets` as that API's `/pets` in
//! that stage; the base path `(none)` (empty) serves the whole domain. A
//! mapping without a stage leaves the stage as the first segment after
//! the base path. Sans-IO: the shards ask [`DomainNames::map`].

/// The compiled `[[domain_names]]`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DomainNames {
    domains: Vec<Domain>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// Lower case, no port; `*.example.com` for a wildcard domain.
    pub name: String,
    /// Longest base path first, so that the first match is the longest.
    pub mappings: Vec<Mapping>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// Without leading or trailing `/`; empty for `(none)`.
    pub base_path: String,
    pub api: String,
    pub stage: Option<String>,
}

/// Where a request for a custom domain goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped<'a, 'p> {
    pub api: &'a str,
    /// The stage: the mapping's, or the first segment after the base path
    /// (`None` when there is none).
    pub stage: Option<&'p str>,
    /// The mapping's own stage (when it has one).
    pub fixed_stage: Option<&'a str>,
    /// The path after the base path (and the stage, when it came from the
    /// path): the API's resource path.
    pub rest: &'p str,
}

impl DomainNames {
    pub fn new(mut domains: Vec<Domain>) -> DomainNames {
        for d in &mut domains {
            d.mappings
                .sort_by_key(|m| std::cmp::Reverse(m.base_path.len()));
        }
        DomainNames { domains }
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// The domain `host` (a `Host` value, port allowed) names: an exact
    /// name first, else the wildcard with the longest suffix.
    fn domain(&self, host: &[u8]) -> Option<&Domain> {
        let host = match host.iter().rposition(|&b| b == b':') {
            // `[::1]:8080` or `name:8080`; a bare IPv6 address has no
            // brackets and is no domain name anyway.
            Some(i) if !host.contains(&b']') || host[..i].ends_with(b"]") => &host[..i],
            _ => host,
        };
        let host = host.strip_suffix(b".").unwrap_or(host);
        if let Some(d) = self
            .domains
            .iter()
            .find(|d| d.name.as_bytes().eq_ignore_ascii_case(host))
        {
            return Some(d);
        }
        self.domains
            .iter()
            .filter_map(|d| Some((d, d.name.strip_prefix('*')?)))
            .filter(|(_, suffix)| {
                host.len() > suffix.len()
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
            })
            .max_by_key(|(_, suffix)| suffix.len())
            .map(|(d, _)| d)
    }

    /// Whether a mapping names the API.
    pub fn maps_api(&self, api: &str) -> bool {
        self.domains
            .iter()
            .any(|d| d.mappings.iter().any(|m| m.api == api))
    }

    /// The domains, for `check`.
    pub fn iter(&self) -> impl Iterator<Item = &Domain> {
        self.domains.iter()
    }

    /// The mapping a request for `host` and `path` takes. `None` when the
    /// host is no custom domain; `Some(None)` when it is one but no base
    /// path matches.
    pub fn map<'a, 'p>(
        &'a self,
        host: Option<&[u8]>,
        path: &'p str,
    ) -> Option<Option<Mapped<'a, 'p>>> {
        if self.domains.is_empty() {
            return None;
        }
        let domain = self.domain(host?)?;
        Some(domain.mappings.iter().find_map(|m| {
            let after = if m.base_path.is_empty() {
                path
            } else {
                let rest = path.strip_prefix('/')?.strip_prefix(m.base_path.as_str())?;
                // The base path is whole segments: `/v2` and `/v2/...`,
                // never `/v22`.
                if !(rest.is_empty() || rest.starts_with('/')) {
                    return None;
                }
                rest
            };
            Some(match &m.stage {
                Some(s) => Mapped {
                    api: &m.api,
                    stage: None,
                    fixed_stage: Some(s),
                    rest: after,
                },
                None => {
                    let (stage, rest) = split_stage(after);
                    Mapped {
                        api: &m.api,
                        stage,
                        fixed_stage: None,
                        rest,
                    }
                }
            })
        }))
    }
}

/// `/prod/pets/1` → (`prod`, `/pets/1`); `/prod` → (`prod`, ``).
pub fn split_stage(path: &str) -> (Option<&str>, &str) {
    let Some(p) = path.strip_prefix('/') else {
        return (None, path);
    };
    // A byte search: `str::find(char)` was ~0.4% of a shard's samples on a
    // MOCK route (`perf`, short paths).
    let (stage, rest) = match p.bytes().position(|b| b == b'/') {
        Some(i) => (&p[..i], &p[i..]),
        None => (p, ""),
    };
    if stage.is_empty() {
        (None, rest)
    } else {
        (Some(stage), rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> DomainNames {
        let m = |base: &str, api: &str, stage: Option<&str>| Mapping {
            base_path: base.into(),
            api: api.into(),
            stage: stage.map(str::to_owned),
        };
        DomainNames::new(vec![
            Domain {
                name: "api.example.com".into(),
                mappings: vec![
                    m("", "root", Some("prod")),
                    m("v2", "two", Some("beta")),
                    m("v2/orders", "orders", None),
                ],
            },
            Domain {
                name: "*.example.com".into(),
                mappings: vec![m("v1", "wild", Some("prod"))],
            },
        ])
    }

    #[test]
    fn base_paths_match_whole_segments_longest_first() {
        let d = names();
        let host = Some(&b"API.example.com:8443"[..]);
        let got = |path| {
            d.map(host, path)
                .unwrap()
                .map(|m| (m.api, m.fixed_stage, m.stage, m.rest))
        };
        assert_eq!(
            got("/pets/1"),
            Some(("root", Some("prod"), None, "/pets/1"))
        );
        assert_eq!(got("/v2/pets"), Some(("two", Some("beta"), None, "/pets")));
        assert_eq!(got("/v2"), Some(("two", Some("beta"), None, "")));
        assert_eq!(
            got("/v22/pets"),
            Some(("root", Some("prod"), None, "/v22/pets"))
        );
        // No stage in the mapping: the next segment is the stage.
        assert_eq!(
            got("/v2/orders/live/7"),
            Some(("orders", None, Some("live"), "/7"))
        );
        assert_eq!(got("/v2/orders"), Some(("orders", None, None, "")));
    }

    #[test]
    fn stage_split() {
        assert_eq!(split_stage("/prod/pets/1"), (Some("prod"), "/pets/1"));
        assert_eq!(split_stage("/prod"), (Some("prod"), ""));
        assert_eq!(split_stage("/prod/"), (Some("prod"), "/"));
        assert_eq!(split_stage("/"), (None, ""));
        assert_eq!(split_stage(""), (None, ""));
        assert_eq!(split_stage("*"), (None, "*"));
    }

    #[test]
    fn hosts_exact_then_wildcard_else_none() {
        let d = names();
        assert_eq!(
            d.map(Some(b"a.b.example.com"), "/v1/x")
                .unwrap()
                .map(|m| m.api),
            Some("wild")
        );
        // A wildcard domain without a root mapping: no match.
        assert_eq!(d.map(Some(b"a.example.com"), "/x"), Some(None));
        assert_eq!(d.map(Some(b"example.com"), "/x"), None);
        assert_eq!(d.map(Some(b"other.org"), "/x"), None);
        assert_eq!(d.map(None, "/x"), None);
        assert_eq!(
            d.map(Some(b"api.example.com."), "/x")
                .unwrap()
                .map(|m| m.api),
            Some("root")
        );
        assert_eq!(d.map(Some(b"[::1]:8080"), "/x"), None);
        assert!(d.maps_api("orders") && !d.maps_api("nosuch"));
        assert_eq!(
            DomainNames::default().map(Some(b"api.example.com"), "/x"),
            None
        );
    }
}
