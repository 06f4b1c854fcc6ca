//! The static route trie: resource paths compiled once per snapshot.
//!
//! Owns: matching a resource path (`/pets/12`) to a resource and its path
//! parameters. Precedence as API Gateway: a literal segment beats a
//! `{param}`, which beats a greedy `{proxy+}`; when a more specific branch
//! fails further down, the next one is tried. A trailing slash is ignored.
//! Must not: allocate on a hit (captures are byte ranges into the path;
//! only a segment that needs percent-decoding to compare costs a `String`).
//! Read first: [`RouteTrie::lookup`].

use std::collections::HashMap;

use crate::http::query::decode_path;

/// Most path parameters one resource path may have (API Gateway resource
/// paths are short; this bounds the capture array, not the URI).
pub const MAX_PARAMS: usize = 16;

pub type ResourceId = u32;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
struct Node {
    literal: FastMap<Box<str>, u32>,
    param: Option<u32>,
    greedy: Option<ResourceId>,
    resource: Option<ResourceId>,
}

/// Byte ranges of the captured parameter values, in path order. The greedy
/// capture spans the rest of the path, slashes included.
#[derive(Clone, Copy, Debug)]
pub struct Captures {
    ranges: [(u32, u32); MAX_PARAMS],
    len: usize,
}

impl Default for Captures {
    fn default() -> Self {
        Captures {
            ranges: [(0, 0); MAX_PARAMS],
            len: 0,
        }
    }
}

impl Captures {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn get<'p>(&self, path: &'p str, i: usize) -> Option<&'p str> {
        if i >= self.len {
            return None;
        }
        let (s, e) = self.ranges[i];
        path.get(s as usize..e as usize)
    }
    fn push(&mut self, start: usize, end: usize) -> bool {
        if self.len == MAX_PARAMS {
            return false;
        }
        self.ranges[self.len] = (start as u32, end as u32);
        self.len += 1;
        true
    }
}

/// One segment of a resource path template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathError {
    MustStartWithSlash,
    EmptySegment,
    InvalidCharacter(char),
    GreedyNotLast,
    PartialParameter,
    TooManyParameters,
    ConflictingParameterName { existing: String, new: String },
    Duplicate,
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathError::MustStartWithSlash => write!(f, "a resource path must start with '/'"),
            PathError::EmptySegment => write!(f, "empty path segment"),
            PathError::InvalidCharacter(c) => write!(
                f,
                "invalid character {c:?} in path (allowed: A-Za-z0-9 _ - . , : and {{param}} segments)"
            ),
            PathError::GreedyNotLast => {
                write!(f, "a greedy path variable {{name+}} must be the last segment")
            }
            PathError::PartialParameter => {
                write!(f, "a path parameter must be a whole segment, like /{{id}}")
            }
            PathError::TooManyParameters => {
                write!(f, "more than {MAX_PARAMS} path parameters")
            }
            PathError::ConflictingParameterName { existing, new } => write!(
                f,
                "A sibling ({{{existing}}}) of this resource already has a variable path part -- only one is allowed ({{{new}}} here; API Gateway allows one {{param}} or {{proxy+}} per level)"
            ),
            PathError::Duplicate => write!(f, "duplicate resource path"),
        }
    }
}

/// Parses `/pets/{petId}/{proxy+}` into segments, with API Gateway's rules.
pub fn parse_path_template(path: &str) -> Result<Vec<Segment>, PathError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathError::MustStartWithSlash);
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let raw: Vec<&str> = rest.split('/').collect();
    let mut out = Vec::with_capacity(raw.len());
    let mut params = 0;
    for (i, seg) in raw.iter().enumerate() {
        if seg.is_empty() {
            return Err(PathError::EmptySegment);
        }
        if let Some(inner) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            params += 1;
            if params > MAX_PARAMS {
                return Err(PathError::TooManyParameters);
            }
            let (name, greedy) = match inner.strip_suffix('+') {
                Some(n) => (n, true),
                None => (inner, false),
            };
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            {
                return Err(PathError::PartialParameter);
            }
            if greedy {
                if i + 1 != raw.len() {
                    return Err(PathError::GreedyNotLast);
                }
                out.push(Segment::Greedy(name.to_owned()));
            } else {
                out.push(Segment::Param(name.to_owned()));
            }
        } else {
            if seg.contains('{') || seg.contains('}') {
                return Err(PathError::PartialParameter);
            }
            if let Some(c) = seg
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "_-.,:".contains(*c)))
            {
                return Err(PathError::InvalidCharacter(c));
            }
            out.push(Segment::Literal((*seg).to_owned()));
        }
    }
    Ok(out)
}

#[derive(Debug)]
pub struct RouteTrie {
    nodes: Vec<Node>,
    /// Parameter name bound at each param node, to refuse sibling names.
    param_names: FastMap<u32, String>,
    greedy_names: FastMap<u32, String>,
}

impl Default for RouteTrie {
    fn default() -> Self {
        RouteTrie {
            nodes: vec![Node::default()],
            param_names: FastMap::default(),
            greedy_names: FastMap::default(),
        }
    }
}

impl RouteTrie {
    pub fn new() -> RouteTrie {
        RouteTrie::default()
    }

    /// Adds a resource. Errors on a duplicate path or sibling parameters
    /// with different names (API Gateway refuses both).
    pub fn insert(&mut self, segments: &[Segment], id: ResourceId) -> Result<(), PathError> {
        let mut node = 0u32;
        for seg in segments {
            node = match seg {
                Segment::Literal(lit) => {
                    if let Some(&child) = self.nodes[node as usize].literal.get(lit.as_str()) {
                        child
                    } else {
                        let child = self.push_node();
                        self.nodes[node as usize]
                            .literal
                            .insert(lit.clone().into_boxed_str(), child);
                        child
                    }
                }
                Segment::Param(name) => {
                    if let Some(existing) = self.greedy_names.get(&node) {
                        return Err(PathError::ConflictingParameterName {
                            existing: format!("{existing}+"),
                            new: name.clone(),
                        });
                    }
                    if let Some(existing) = self.param_names.get(&node) {
                        if existing != name {
                            return Err(PathError::ConflictingParameterName {
                                existing: existing.clone(),
                                new: name.clone(),
                            });
                        }
                    }
                    match self.nodes[node as usize].param {
                        Some(child) => child,
                        None => {
                            let child = self.push_node();
                            self.nodes[node as usize].param = Some(child);
                            self.param_names.insert(node, name.clone());
                            child
                        }
                    }
                }
                Segment::Greedy(name) => {
                    if let Some(existing) = self.param_names.get(&node) {
                        return Err(PathError::ConflictingParameterName {
                            existing: existing.clone(),
                            new: format!("{name}+"),
                        });
                    }
                    if let Some(existing) = self.greedy_names.get(&node) {
                        if existing != name {
                            return Err(PathError::ConflictingParameterName {
                                existing: existing.clone(),
                                new: name.clone(),
                            });
                        }
                        return Err(PathError::Duplicate);
                    }
                    self.greedy_names.insert(node, name.clone());
                    self.nodes[node as usize].greedy = Some(id);
                    return Ok(());
                }
            };
        }
        let slot = &mut self.nodes[node as usize].resource;
        if slot.is_some() {
            return Err(PathError::Duplicate);
        }
        *slot = Some(id);
        Ok(())
    }

    fn push_node(&mut self) -> u32 {
        self.nodes.push(Node::default());
        (self.nodes.len() - 1) as u32
    }

    /// Finds the resource for `path` (the part after the stage, starting
    /// with `/`, or empty for the root). Captured values are raw (still
    /// percent-encoded) ranges of `path`.
    pub fn lookup(&self, path: &str, caps: &mut Captures) -> Option<ResourceId> {
        caps.len = 0;
        let mut p = path;
        // A trailing slash is ignored: /pets/ is /pets.
        if p.len() > 1 {
            p = p.strip_suffix('/').unwrap_or(p);
        }
        let start = usize::from(p.starts_with('/'));
        if p.len() <= start {
            return self.nodes[0].resource;
        }
        self.walk(0, path, start, p.len(), caps)
    }

    fn walk(
        &self,
        node: u32,
        path: &str,
        pos: usize,
        end: usize,
        caps: &mut Captures,
    ) -> Option<ResourceId> {
        let n = &self.nodes[node as usize];
        if pos > end {
            return n.resource;
        }
        let seg_end = path[pos..end].find('/').map_or(end, |i| pos + i);
        let seg = &path[pos..seg_end];
        let next = seg_end + 1;
        if !seg.is_empty() {
            // 1. literal
            let child = if seg.contains('%') {
                literal_decoded(&n.literal, seg)
            } else {
                n.literal.get(seg).copied()
            };
            if let Some(child) = child {
                if let Some(r) = self.walk(child, path, next, end, caps) {
                    return Some(r);
                }
            }
            // 2. {param}
            if let Some(child) = n.param {
                let mark = caps.len;
                if caps.push(pos, seg_end) {
                    if let Some(r) = self.walk(child, path, next, end, caps) {
                        return Some(r);
                    }
                }
                caps.len = mark;
            }
        }
        // 3. {proxy+}: the rest of the path, one or more segments.
        if let Some(r) = n.greedy {
            if pos < end && caps.push(pos, end) {
                return Some(r);
            }
        }
        None
    }
}

/// A literal child by the percent-decoded segment. Decoded on the stack, so
/// a hit allocates nothing; a segment longer than the buffer or not UTF-8
/// after decoding takes the general (allocating, lossy) decoder.
fn literal_decoded(literal: &FastMap<Box<str>, u32>, seg: &str) -> Option<u32> {
    let mut buf = [0u8; 256];
    let mut len = 0;
    for b in percent_encoding::percent_decode(seg.as_bytes()) {
        let Some(slot) = buf.get_mut(len) else {
            return literal.get(decode_path(seg.as_bytes()).as_ref()).copied();
        };
        *slot = b;
        len += 1;
    }
    match std::str::from_utf8(&buf[..len]) {
        Ok(s) => literal.get(s).copied(),
        Err(_) => literal.get(decode_path(seg.as_bytes()).as_ref()).copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trie(paths: &[&str]) -> RouteTrie {
        let mut t = RouteTrie::new();
        for (i, p) in paths.iter().enumerate() {
            t.insert(&parse_path_template(p).unwrap(), i as u32)
                .unwrap();
        }
        t
    }

    fn check(t: &RouteTrie, paths: &[&str], path: &str, want: Option<(&str, &[&str])>) {
        let mut caps = Captures::default();
        let got = t.lookup(path, &mut caps);
        match want {
            None => assert_eq!(got, None, "{path}"),
            Some((resource, params)) => {
                let id = got.unwrap_or_else(|| panic!("no match for {path}"));
                assert_eq!(paths[id as usize], resource, "{path}");
                let vals: Vec<&str> = (0..caps.len())
                    .map(|i| caps.get(path, i).unwrap())
                    .collect();
                assert_eq!(vals, params, "{path}");
            }
        }
    }

    #[test]
    fn precedence_table() {
        let paths = [
            "/",
            "/pets",
            "/pets/{petId}",
            "/pets/mine",
            "/pets/{petId}/toys",
            "/{proxy+}",
            "/files/{path+}",
            "/k/a/b",
            "/k/{x}/c",
        ];
        let t = trie(&paths);
        type Case<'a> = (&'a str, Option<(&'a str, &'a [&'a str])>);
        let cases: &[Case] = &[
            ("", Some(("/", &[]))),
            ("/", Some(("/", &[]))),
            ("/pets", Some(("/pets", &[]))),
            ("/pets/", Some(("/pets", &[]))),
            ("/pets/mine", Some(("/pets/mine", &[]))),
            ("/pets/12", Some(("/pets/{petId}", &["12"]))),
            ("/pets/12/", Some(("/pets/{petId}", &["12"]))),
            ("/pets/12/toys", Some(("/pets/{petId}/toys", &["12"]))),
            // literal branch fails deeper: falls back to greedy at the root
            ("/pets/12/other", Some(("/{proxy+}", &["pets/12/other"]))),
            ("/files/a/b/c.txt", Some(("/files/{path+}", &["a/b/c.txt"]))),
            ("/files", Some(("/{proxy+}", &["files"]))),
            ("/anything/else", Some(("/{proxy+}", &["anything/else"]))),
            ("/k/a/b", Some(("/k/a/b", &[]))),
            // literal /k/a matched, /k/a/c missing: backtrack to /k/{x}/c
            ("/k/a/c", Some(("/k/{x}/c", &["a"]))),
            ("/k/a/d", Some(("/{proxy+}", &["k/a/d"]))),
            ("/pets%2Fx", Some(("/{proxy+}", &["pets%2Fx"]))),
            ("/p%65ts", Some(("/pets", &[]))),
        ];
        for (path, want) in cases {
            check(&t, &paths, path, *want);
        }
    }

    #[test]
    fn misses() {
        let paths = ["/pets", "/pets/{id}"];
        let t = trie(&paths);
        for path in ["/", "/dogs", "/pets/1/2", "//pets", "/pets//", "/pets//1"] {
            check(&t, &paths, path, None);
        }
    }

    #[test]
    fn template_errors() {
        let cases: &[(&str, PathError)] = &[
            ("pets", PathError::MustStartWithSlash),
            ("/pets//x", PathError::EmptySegment),
            ("/{proxy+}/x", PathError::GreedyNotLast),
            ("/pets/x{id}", PathError::PartialParameter),
            ("/pets/{}", PathError::PartialParameter),
            ("/pets/a b", PathError::InvalidCharacter(' ')),
        ];
        for (p, want) in cases {
            assert_eq!(parse_path_template(p).err().as_ref(), Some(want), "{p}");
        }
        let mut t = RouteTrie::new();
        t.insert(&parse_path_template("/pets/{id}").unwrap(), 0)
            .unwrap();
        assert!(matches!(
            t.insert(&parse_path_template("/pets/{petId}/x").unwrap(), 1),
            Err(PathError::ConflictingParameterName { .. })
        ));
        assert_eq!(
            t.insert(&parse_path_template("/pets/{id}/").unwrap(), 2),
            Err(PathError::Duplicate)
        );
        // One variable part per level, greedy or not (API Gateway's rule),
        // whichever comes first.
        assert_eq!(
            t.insert(&parse_path_template("/pets/{proxy+}").unwrap(), 3),
            Err(PathError::ConflictingParameterName {
                existing: "id".into(),
                new: "proxy+".into()
            })
        );
        t.insert(&parse_path_template("/toys/{proxy+}").unwrap(), 4)
            .unwrap();
        assert_eq!(
            t.insert(&parse_path_template("/toys/{id}").unwrap(), 5),
            Err(PathError::ConflictingParameterName {
                existing: "proxy+".into(),
                new: "id".into()
            })
        );
        t.insert(&parse_path_template("/toys/ball").unwrap(), 6)
            .unwrap();
    }

    #[test]
    fn deep_paths_do_not_recurse_past_the_trie() {
        let paths = ["/a"];
        let t = trie(&paths);
        let long = "/a".repeat(5000);
        check(&t, &paths, &long, None);
    }
}
