//! A small PetStore backend for trying Tollgate with no other setup
//! (`[demo_backend]` in the config): the same answers as API Gateway's
//! PetStore demo endpoint. Plain threads and blocking sockets: it is a
//! demo, kept off the shards.
//!
//! It also speaks SOAP for `config/apis/soap.json`: `POST /soap` answers
//! GetPet and AddPet over SOAP 1.1 (`text/xml`, `SOAPAction` header) and
//! SOAP 1.2 (`application/soap+xml; action=...`), with a SOAP fault (HTTP
//! 500) for an unknown pet or action. The XML handling is a few string
//! scans, enough for the demo's flat messages; it is not an XML parser.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use bytes::BytesMut;

use crate::http::blocking::{read_request, ReadError};
use crate::http::query;
use crate::http::request::{HeadLimits, RequestHead};
use crate::http::response::Persist;

const JSON: &str = "application/json";

const PETS: &str = r#"[{"id":1,"type":"dog","price":249.99},{"id":2,"type":"cat","price":124.99},{"id":3,"type":"fish","price":0.99}]"#;

/// Binds `addr` and serves on a background thread.
pub fn start(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("tollgate-demo".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = std::thread::Builder::new()
                    .name("tollgate-demo-conn".into())
                    .spawn(move || serve(stream));
            }
        })?;
    Ok(local)
}

fn serve(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let _ = stream.set_nodelay(true);
    let limits = HeadLimits::default();
    let mut buf = BytesMut::new();
    loop {
        let (head, body) = match read_request(&mut stream, &mut buf, &limits, 1 << 20, &mut || {}) {
            Ok(r) => r,
            Err(ReadError::Closed) => return,
            Err(_) => {
                let _ = stream.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                return;
            }
        };
        let (status, content_type, payload) = answer(&head, &body);
        let out = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
            crate::http::response::reason_phrase(status),
            payload.len()
        );
        let mut bytes = out.into_bytes();
        let persist = Persist::new(head.info.keep_alive, head.info.version);
        persist.write_header(&mut bytes);
        bytes.extend_from_slice(b"\r\n");
        if head.method() != crate::http::request::Method::Head {
            bytes.extend_from_slice(payload.as_bytes());
        }
        if stream.write_all(&bytes).is_err() || !head.info.keep_alive {
            return;
        }
    }
}

/// Status, `Content-Type` and body for one request.
fn answer(head: &RequestHead, body: &[u8]) -> (u16, &'static str, String) {
    let path = String::from_utf8_lossy(head.path());
    if head.method_bytes() == b"POST" && path.trim_end_matches('/') == "/soap" {
        return soap::answer(head, body);
    }
    let (status, payload) = answer_json(head, body);
    (status, JSON, payload)
}

fn answer_json(head: &RequestHead, body: &[u8]) -> (u16, String) {
    let path = String::from_utf8_lossy(head.path());
    let path = path.trim_end_matches('/');
    let q = head.query().unwrap_or_default();
    match (head.method_bytes(), path) {
        (b"GET", "/petstore/pets") => {
            let pets: Vec<serde_json::Value> = serde_json::from_str(PETS).unwrap_or_default();
            let kind = query::last_value(q, "type");
            let list: Vec<&serde_json::Value> = pets
                .iter()
                .filter(|p| kind.as_deref().is_none_or(|k| p["type"] == k))
                .collect();
            (
                200,
                serde_json::Value::from(list.into_iter().cloned().collect::<Vec<_>>()).to_string(),
            )
        }
        (b"POST", "/petstore/pets") => {
            let pet: serde_json::Value =
                serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
            (
                200,
                serde_json::json!({"pet": pet, "message": "success"}).to_string(),
            )
        }
        (b"GET", p) if p.starts_with("/petstore/pets/") => {
            let id = &p["/petstore/pets/".len()..];
            let pets: Vec<serde_json::Value> = serde_json::from_str(PETS).unwrap_or_default();
            match pets
                .iter()
                .find(|pet| pet["id"].as_u64().map(|n| n.to_string()).as_deref() == Some(id))
            {
                Some(pet) => (200, pet.to_string()),
                None => (
                    404,
                    format!(
                        "{{\"message\":\"pet {} not found\"}}",
                        serde_json::Value::from(id)
                    ),
                ),
            }
        }
        _ => (404, "{\"message\":\"not found\"}".to_owned()),
    }
}

/// The demo's SOAP service (see the module docs).
mod soap {
    use crate::http::request::RequestHead;

    const NS: &str = "urn:tollgate:petstore";

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Version {
        Soap11,
        Soap12,
    }

    impl Version {
        fn content_type(self) -> &'static str {
            match self {
                Version::Soap11 => "text/xml; charset=utf-8",
                Version::Soap12 => "application/soap+xml; charset=utf-8",
            }
        }

        fn envelope_ns(self) -> &'static str {
            match self {
                Version::Soap11 => "http://schemas.xmlsoap.org/soap/envelope/",
                Version::Soap12 => "http://www.w3.org/2003/05/soap-envelope",
            }
        }
    }

    /// `POST /soap`: the version from `Content-Type`, the operation from
    /// the action (the `SOAPAction` header for 1.1, the `action` media
    /// type parameter for 1.2), else from the first element in the Body.
    pub(super) fn answer(head: &RequestHead, body: &[u8]) -> (u16, &'static str, String) {
        let content_type = head
            .header("content-type")
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let mut params = content_type.split(';');
        let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
        let (version, action) = match media.as_str() {
            "text/xml" => (
                Version::Soap11,
                head.header("soapaction")
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .unwrap_or_default(),
            ),
            "application/soap+xml" => (
                Version::Soap12,
                params
                    .filter_map(|p| p.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("action"))
                    .map(|(_, v)| v.to_owned())
                    .unwrap_or_default(),
            ),
            _ => {
                return (
                    415,
                    "text/plain; charset=utf-8",
                    format!("unsupported media type `{media}`: SOAP 1.1 is text/xml, SOAP 1.2 application/soap+xml\n"),
                )
            }
        };
        let Ok(xml) = std::str::from_utf8(body) else {
            return fault(version, "the request body is not UTF-8");
        };
        let body_xml = soap_body(xml);
        let action = action.trim().trim_matches('"');
        let operation = if action.is_empty() {
            first_element(body_xml).unwrap_or("")
        } else {
            // `GetPet`, `urn:tollgate:petstore/GetPet`, `http://x/y#GetPet`.
            action.rsplit(['/', '#', ':']).next().unwrap_or("")
        };
        match operation {
            "GetPet" => get_pet(version, body_xml),
            "AddPet" => add_pet(version, body_xml),
            "" => fault(version, "no SOAP action and no operation in the Body"),
            other => fault(version, &format!("unknown SOAP action `{other}`")),
        }
    }

    fn get_pet(version: Version, body_xml: &str) -> (u16, &'static str, String) {
        let id = element_text(body_xml, "id").unwrap_or_default();
        let id = id.trim();
        if id.is_empty() {
            return fault(version, "GetPet needs an id");
        }
        let pets: Vec<serde_json::Value> = serde_json::from_str(super::PETS).unwrap_or_default();
        match pets
            .iter()
            .find(|pet| pet["id"].as_u64().map(|n| n.to_string()).as_deref() == Some(id))
        {
            Some(pet) => envelope(
                version,
                200,
                &format!(
                    "<GetPetResponse xmlns=\"{NS}\"><pet><id>{}</id><type>{}</type><price>{}</price></pet></GetPetResponse>",
                    pet["id"],
                    escape(pet["type"].as_str().unwrap_or("")),
                    pet["price"]
                ),
            ),
            None => fault(version, &format!("pet {id} not found")),
        }
    }

    /// Like the JSON `POST /petstore/pets`: the pet comes back as sent.
    fn add_pet(version: Version, body_xml: &str) -> (u16, &'static str, String) {
        let Some(kind) = element_text(body_xml, "type").filter(|t| !t.trim().is_empty()) else {
            return fault(version, "AddPet needs a type");
        };
        let price = element_text(body_xml, "price").unwrap_or_default();
        envelope(
            version,
            200,
            &format!(
                "<AddPetResponse xmlns=\"{NS}\"><pet><type>{}</type><price>{}</price></pet><message>success</message></AddPetResponse>",
                escape(&kind),
                escape(&price)
            ),
        )
    }

    /// A client fault, answered with 500 as most SOAP stacks do (SOAP 1.2's
    /// HTTP binding would allow 400 for `env:Sender`).
    fn fault(version: Version, reason: &str) -> (u16, &'static str, String) {
        let reason = escape(reason);
        let inner = match version {
            Version::Soap11 => format!(
                "<soap:Fault><faultcode>soap:Client</faultcode><faultstring>{reason}</faultstring></soap:Fault>"
            ),
            Version::Soap12 => format!(
                "<soap:Fault><soap:Code><soap:Value>soap:Sender</soap:Value></soap:Code><soap:Reason><soap:Text xml:lang=\"en\">{reason}</soap:Text></soap:Reason></soap:Fault>"
            ),
        };
        envelope(version, 500, &inner)
    }

    fn envelope(version: Version, status: u16, inner: &str) -> (u16, &'static str, String) {
        (
            status,
            version.content_type(),
            format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<soap:Envelope xmlns:soap=\"{}\"><soap:Body>{inner}</soap:Body></soap:Envelope>",
                version.envelope_ns()
            ),
        )
    }

    /// Start tags in `xml`: (local name, text after the tag's `>`,
    /// self-closing). Skips end tags, comments, declarations and PIs.
    fn start_tags(xml: &str) -> impl Iterator<Item = (&str, &str, bool)> {
        xml.match_indices('<').filter_map(move |(i, _)| {
            let rest = &xml[i + 1..];
            if rest.starts_with(['/', '!', '?']) {
                return None;
            }
            let end = rest.find('>')?;
            let tag = &rest[..end];
            let name = tag
                .split(|c: char| c.is_whitespace() || c == '/')
                .next()
                .unwrap_or("");
            let local = name.rsplit(':').next().unwrap_or(name);
            Some((local, &rest[end + 1..], tag.ends_with('/')))
        })
    }

    /// What follows the Body start tag (all of `xml` without one).
    fn soap_body(xml: &str) -> &str {
        start_tags(xml)
            .find(|(name, _, _)| *name == "Body")
            .map_or(xml, |(_, after, _)| after)
    }

    fn first_element(xml: &str) -> Option<&str> {
        start_tags(xml).next().map(|(name, _, _)| name)
    }

    /// The unescaped text of the first element named `local` (any prefix).
    fn element_text(xml: &str, local: &str) -> Option<String> {
        let (_, after, empty) = start_tags(xml).find(|(name, _, _)| *name == local)?;
        if empty {
            return Some(String::new());
        }
        let text = &after[..after.find('<').unwrap_or(after.len())];
        Some(unescape(text))
    }

    fn escape(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&apos;"),
                c => out.push(c),
            }
        }
        out
    }

    fn unescape(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find('&') {
            out.push_str(&rest[..i]);
            rest = &rest[i..];
            let entity = rest.find(';').map(|end| (&rest[1..end], end));
            let decoded = entity.and_then(|(name, end)| {
                let c = match name {
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "amp" => Some('&'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    n => n
                        .strip_prefix("#x")
                        .map(|h| u32::from_str_radix(h, 16))
                        .or_else(|| n.strip_prefix('#').map(str::parse))
                        .and_then(Result::ok)
                        .and_then(char::from_u32),
                };
                c.map(|c| (c, end))
            });
            match decoded {
                Some((c, end)) => {
                    out.push(c);
                    rest = &rest[end + 1..];
                }
                None => {
                    out.push('&');
                    rest = &rest[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn finds_elements_in_the_body() {
            let xml = "<?xml version=\"1.0\"?>\n<s:Envelope xmlns:s=\"x\"><s:Header><id>9</id></s:Header><s:Body>\n  <p:GetPet xmlns:p=\"urn:tollgate:petstore\"><p:id> 2 </p:id><note/></p:GetPet></s:Body></s:Envelope>";
            let body = soap_body(xml);
            assert_eq!(first_element(body), Some("GetPet"));
            assert_eq!(element_text(body, "id").as_deref(), Some(" 2 "));
            assert_eq!(element_text(body, "note").as_deref(), Some(""));
            assert_eq!(element_text(body, "missing"), None);
        }

        #[test]
        fn escapes_round_trip() {
            let s = "a<b>&\"c'\u{e9}";
            assert_eq!(unescape(&escape(s)), s);
            assert_eq!(
                unescape("&#233;&#x1F43E;&bogus;&"),
                "\u{e9}\u{1F43E}&bogus;&"
            );
        }

        #[test]
        fn answers_and_faults() {
            let pet = get_pet(Version::Soap11, "<GetPet><id>3</id></GetPet>");
            assert_eq!(pet.0, 200);
            assert!(pet.2.contains("<type>fish</type>"), "{}", pet.2);
            let f = get_pet(Version::Soap12, "<GetPet><id>7</id></GetPet>");
            assert_eq!((f.0, f.1), (500, "application/soap+xml; charset=utf-8"));
            assert!(
                f.2.contains("<soap:Value>soap:Sender</soap:Value>"),
                "{}",
                f.2
            );
            let added = add_pet(
                Version::Soap11,
                "<AddPet><type>b&amp;b</type><price>1.5</price></AddPet>",
            );
            assert!(
                added.2.contains("<type>b&amp;b</type><price>1.5</price>"),
                "{}",
                added.2
            );
            assert_eq!(add_pet(Version::Soap11, "<AddPet/>").0, 500);
            let f = get_pet(Version::Soap11, "<GetPet/>");
            assert!(f.2.contains("GetPet needs an id"), "{}", f.2);
        }
    }
}
