//! SOAP through an HTTP (non-proxy) integration with no mapping templates
//! (`config/apis/soap.json`): against a real SOAP server
//! (`tests/soap_backend.py`, spyne) the envelope must reach the backend and
//! the answer the client byte for byte, faults included; and the shipped
//! config must serve the example with its demo backend.
//!
//! The spyne tests need `pip install spyne lxml`; without it they print a
//! skip message and pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};

use base64::Engine as _;
use support::{Gateway, RawClient, Response};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn soap_json() -> String {
    std::fs::read_to_string(format!("{ROOT}/config/apis/soap.json")).unwrap()
}

/// `tests/soap_backend.py` as a child process; killed on drop (and it
/// exits by itself when its stdin closes).
struct SoapBackend {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    addr: SocketAddr,
}

/// What the backend saw of the last SOAP exchange (`GET /last`).
struct Exchange {
    request_headers: serde_json::Value,
    request_body: Vec<u8>,
    response_status: u16,
    response_headers: serde_json::Value,
    response_body: Vec<u8>,
}

impl SoapBackend {
    /// `None` (with a message) when python3 or spyne is not installed.
    fn start() -> Option<SoapBackend> {
        let available = Command::new("python3")
            .args(["-c", "import spyne, lxml"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !available {
            eprintln!(
                "SKIP: python3 with spyne and lxml is needed for the real SOAP backend (pip install spyne lxml)"
            );
            return None;
        }
        let mut child = Command::new("python3")
            .arg(format!("{ROOT}/tests/soap_backend.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn python3 tests/soap_backend.py");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let port: u16 = match line.trim().parse() {
            Ok(p) => p,
            Err(_) => {
                let _ = child.kill();
                panic!("soap_backend.py printed {line:?} instead of its port");
            }
        };
        Some(SoapBackend {
            child,
            _stdout: stdout,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }

    fn last(&self) -> Exchange {
        let r = support::client::get(self.addr, "/last");
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap()
        };
        Exchange {
            request_headers: v["request"]["headers"].clone(),
            request_body: b64(&v["request"]["body"]),
            response_status: v["response"]["status"].as_u64().unwrap() as u16,
            response_headers: v["response"]["headers"].clone(),
            response_body: b64(&v["response"]["body"]),
        }
    }
}

impl Drop for SoapBackend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `POST path` with `Host: host`, extra header lines and a body.
fn post(addr: SocketAddr, host: &str, path: &str, headers: &str, body: &[u8]) -> Response {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    RawClient::connect(addr).request(&req)
}

fn gateway_for(backend: &SoapBackend) -> Gateway {
    Gateway::builder()
        .api("soap", &soap_json())
        .stage(
            "soap",
            "prod",
            &[("soap_backend", &backend.addr.to_string())],
        )
        .default_api("soap")
        .start()
}

/// Asserts the client got exactly what the backend answered.
fn assert_unchanged(r: &Response, seen: &Exchange) {
    assert_eq!(
        r.body,
        seen.response_body,
        "the response body changed on the way:\n{}",
        r.text()
    );
    assert_eq!(
        r.header("content-type"),
        seen.response_headers["content-type"].as_str(),
        "Content-Type is kept"
    );
}

const SOAP11: &str = "Content-Type: text/xml; charset=utf-8\r\n";

/// Non-ASCII text with whitespace that belongs to the value.
const ECHO_TEXT: &str = "  Gr\u{fc}\u{df}e, caf\u{e9}\n\t\u{65e5}\u{672c}\u{8a9e} \u{1f43e}  ";

/// A SOAP 1.1 Echo of [`ECHO_TEXT`]: CRLF line ends, tabs, indentation
/// and a comment around it.
fn echo_envelope() -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n\
         <!-- sent through tollgate -->\r\n\
         <soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"\r\n\
         \t\t  xmlns:p=\"urn:tollgate:petstore\">\r\n\
         \t<soapenv:Header/>\r\n\
         \t<soapenv:Body>\r\n\
         \t\t<p:Echo>\r\n\
         \t\t\t<p:text>{ECHO_TEXT}</p:text>\r\n\
         \t\t</p:Echo>\r\n\
         \t</soapenv:Body>\r\n\
         </soapenv:Envelope>\r\n"
    )
}

fn get_pet_11(id: u32) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:p=\"urn:tollgate:petstore\">\n  <soapenv:Body>\n    <p:GetPet><p:id>{id}</p:id></p:GetPet>\n  </soapenv:Body>\n</soapenv:Envelope>\n"
    )
}

fn get_pet_12(id: u32) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:p=\"urn:tollgate:petstore\">\n  <env:Body>\n    <p:GetPet><p:id>{id}</p:id></p:GetPet>\n  </env:Body>\n</env:Envelope>\n"
    )
}

#[test]
fn soap11_envelope_reaches_a_real_soap_server_and_back_byte_for_byte() {
    let Some(backend) = SoapBackend::start() else {
        return;
    };
    let gw = gateway_for(&backend);
    let envelope = echo_envelope();
    let r = post(
        gw.addr,
        "test",
        "/prod/soap",
        &format!("{SOAP11}SOAPAction: \"urn:tollgate:petstore/Echo\"\r\n"),
        envelope.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/xml; charset=utf-8"));
    assert!(
        r.text()
            .contains(&format!("<tns:EchoResult>{ECHO_TEXT}</tns:EchoResult>")),
        "the echoed text, whitespace and all: {}",
        r.text()
    );

    let seen = backend.last();
    assert_eq!(
        seen.request_body,
        envelope.as_bytes(),
        "the backend got the envelope byte for byte"
    );
    let h = &seen.request_headers;
    assert_eq!(h["content-type"], "text/xml; charset=utf-8");
    assert_eq!(h["soapaction"], "\"urn:tollgate:petstore/Echo\"");
    assert_eq!(h["content-length"], envelope.len().to_string());
    assert_eq!(
        h.get("accept"),
        None,
        "Accept is mapped from the client's, so none is sent (not the default application/json)"
    );
    assert_eq!(seen.response_status, 200);
    assert_unchanged(&r, &seen);
}

#[test]
fn soap11_lookup_and_fault_pass_through() {
    let Some(backend) = SoapBackend::start() else {
        return;
    };
    let gw = gateway_for(&backend);
    let action = "SOAPAction: \"urn:tollgate:petstore/GetPet\"\r\n";

    let found = get_pet_11(2);
    let r = post(
        gw.addr,
        "test",
        "/prod/soap",
        &format!("{SOAP11}{action}"),
        found.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("<tns:type>cat</tns:type>"),
        "{}",
        r.text()
    );
    let seen = backend.last();
    assert_eq!(seen.request_body, found.as_bytes());
    assert_unchanged(&r, &seen);

    // A SOAP fault: HTTP 500 from the backend, 500 with the same envelope
    // from the gateway (not the gateway's own JSON error).
    let missing = get_pet_11(7);
    let r = post(
        gw.addr,
        "test",
        "/prod/soap",
        &format!("{SOAP11}{action}"),
        missing.as_bytes(),
    );
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/xml; charset=utf-8"));
    assert_eq!(r.header("x-amzn-ErrorType"), None, "not a gateway error");
    let text = r.text();
    assert!(text.contains("<soap11env:Fault>"), "{text}");
    assert!(text.contains("Client.PetNotFound"), "{text}");
    assert!(text.contains("pet 7 not found"), "{text}");
    let seen = backend.last();
    assert_eq!(seen.response_status, 500);
    assert_eq!(seen.request_body, missing.as_bytes());
    assert_unchanged(&r, &seen);
}

#[test]
fn soap12_with_the_action_in_content_type() {
    let Some(backend) = SoapBackend::start() else {
        return;
    };
    let gw = gateway_for(&backend);
    let ct = "application/soap+xml; charset=utf-8; action=\"urn:tollgate:petstore/GetPet\"";

    let found = get_pet_12(3);
    let r = post(
        gw.addr,
        "test",
        "/prod/soap",
        &format!("Content-Type: {ct}\r\n"),
        found.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/soap+xml; charset=utf-8")
    );
    assert!(r.text().contains("<soap12env:Envelope"), "{}", r.text());
    assert!(
        r.text().contains("<tns:type>fish</tns:type>"),
        "{}",
        r.text()
    );
    let seen = backend.last();
    assert_eq!(seen.request_body, found.as_bytes());
    assert_eq!(seen.request_headers["content-type"], ct, "action included");
    assert_eq!(seen.request_headers.get("soapaction"), None);
    assert_unchanged(&r, &seen);

    let missing = get_pet_12(9);
    let r = post(
        gw.addr,
        "test",
        "/prod/soap",
        &format!("Content-Type: {ct}\r\n"),
        missing.as_bytes(),
    );
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        r.text()
            .contains("<soap12env:Value>soap12env:Sender</soap12env:Value>"),
        "{}",
        r.text()
    );
    let seen = backend.last();
    assert_eq!(seen.response_status, 500);
    assert_unchanged(&r, &seen);
}

#[test]
fn chunked_soap_request_reaches_the_backend_whole() {
    // Java SOAP stacks often stream the envelope with chunked encoding.
    let Some(backend) = SoapBackend::start() else {
        return;
    };
    let gw = gateway_for(&backend);
    let envelope = echo_envelope();
    let bytes = envelope.as_bytes();
    let (a, b) = bytes.split_at(bytes.len() / 3);
    let mut req = format!(
        "POST /prod/soap HTTP/1.1\r\nHost: test\r\n{SOAP11}SOAPAction: \"\"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for part in [a, b] {
        req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        req.extend_from_slice(part);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let r = RawClient::connect(gw.addr).request(&req);
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = backend.last();
    assert_eq!(seen.request_body, bytes);
    assert_eq!(seen.request_headers["soapaction"], "\"\"");
    assert_unchanged(&r, &seen);
}

#[test]
fn latin1_binary_and_large_envelopes_pass_untouched() {
    let Some(backend) = SoapBackend::start() else {
        return;
    };
    let gw = gateway_for(&backend);
    let action = "SOAPAction: \"urn:tollgate:petstore/Echo\"\r\n";

    // ISO-8859-1 bytes (not UTF-8): the gateway must not re-encode them.
    let mut latin1 = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:p=\"urn:tollgate:petstore\"><soapenv:Body><p:Echo><p:text>caf".to_vec();
    latin1.extend_from_slice(b"\xe9 \xfc\xdf</p:text></p:Echo></soapenv:Body></soapenv:Envelope>");
    assert!(std::str::from_utf8(&latin1).is_err());
    let r = post(
        gw.addr,
        "test",
        "/prod/soap",
        &format!("Content-Type: text/xml; charset=ISO-8859-1\r\n{action}"),
        &latin1,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text()
            .contains("<tns:EchoResult>caf\u{e9} \u{fc}\u{df}</tns:EchoResult>"),
        "{}",
        r.text()
    );
    let seen = backend.last();
    assert_eq!(seen.request_body, latin1);
    assert_eq!(
        seen.request_headers["content-type"],
        "text/xml; charset=ISO-8859-1"
    );
    assert_unchanged(&r, &seen);

    // An MTOM-style multipart body with every byte value: the backend
    // refuses it (a fault), but it must arrive as sent.
    let mut mtom = b"--b1\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"text/xml\"\r\n\r\n<x/>\r\n--b1\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
    mtom.extend((0..=255u8).cycle().take(1024));
    mtom.extend_from_slice(b"\r\n--b1--\r\n");
    let r = post(
        gw.addr,
        "test",
        "/prod/soap",
        &format!("Content-Type: multipart/related; type=\"application/xop+xml\"; boundary=\"b1\"; start-info=\"text/xml\"\r\n{action}"),
        &mtom,
    );
    assert_eq!(r.status, 500, "{}", r.text());
    let seen = backend.last();
    assert_eq!(seen.request_body, mtom);
    assert_unchanged(&r, &seen);

    // A response larger than upstream.buffer_response_bytes (256 KiB) is
    // streamed rather than buffered: still the same bytes.
    let text = "\u{e9}0123456789abcdef".repeat(20_000);
    let big = echo_envelope().replace(ECHO_TEXT, &text);
    let r = post(
        gw.addr,
        "test",
        "/prod/soap",
        &format!("{SOAP11}{action}"),
        big.as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert!(r.body.len() > 256 * 1024, "{}", r.body.len());
    let seen = backend.last();
    assert_eq!(seen.request_body, big.as_bytes());
    assert_unchanged(&r, &seen);
}

/// The shipped config on ephemeral ports; returns the gateway and the
/// demo backend's address.
fn shipped_config() -> (Gateway, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("apis")).unwrap();
    for api in ["petstore.json", "soap.json"] {
        std::fs::copy(
            format!("{ROOT}/config/apis/{api}"),
            dir.path().join("apis").join(api),
        )
        .unwrap();
    }
    let demo_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = std::fs::read_to_string(format!("{ROOT}/config/tollgate.toml"))
        .unwrap()
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:9000", &format!("127.0.0.1:{demo_port}"));
    let path = dir.path().join("tollgate.toml");
    std::fs::write(&path, cfg).unwrap();
    let gw = support::gateway::start_with_config(dir, &path, &[]);
    (gw, SocketAddr::from(([127, 0, 0, 1], demo_port)))
}

#[test]
fn shipped_config_serves_the_soap_example_with_its_demo_backend() {
    let (gw, demo) = shipped_config();
    let host = "soap.execute-api.local";
    // Each request through the gateway, and the same straight to the demo:
    // the client must get the demo's answer unchanged.
    let both = |headers: &str, body: &str| {
        let via = post(gw.addr, host, "/prod/soap", headers, body.as_bytes());
        let direct = post(demo, "demo", "/soap", headers, body.as_bytes());
        assert_eq!(via.body, direct.body, "body changed: {}", via.text());
        assert_eq!(via.header("content-type"), direct.header("content-type"));
        (via, direct.status)
    };

    let get_pet = |id: u32| {
        format!(
            "<?xml version=\"1.0\"?>\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><GetPet xmlns=\"urn:tollgate:petstore\"><id>{id}</id></GetPet></s:Body></s:Envelope>"
        )
    };
    let action = |op: &str| format!("{SOAP11}SOAPAction: \"urn:tollgate:petstore/{op}\"\r\n");

    let (r, _) = both(&action("GetPet"), &get_pet(1));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/xml; charset=utf-8"));
    assert!(
        r.text()
            .contains("<pet><id>1</id><type>dog</type><price>249.99</price></pet>"),
        "{}",
        r.text()
    );

    // SOAP 1.2, the action in Content-Type, non-ASCII data.
    let add = "<?xml version=\"1.0\"?>\n<e:Envelope xmlns:e=\"http://www.w3.org/2003/05/soap-envelope\"><e:Body><p:AddPet xmlns:p=\"urn:tollgate:petstore\"><p:type>p\u{e4}rrot &amp; co</p:type><p:price>9.5</p:price></p:AddPet></e:Body></e:Envelope>";
    let (r, _) = both(
        "Content-Type: application/soap+xml; charset=utf-8; action=\"urn:tollgate:petstore/AddPet\"\r\n",
        add,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/soap+xml; charset=utf-8")
    );
    assert!(
        r.text().contains(
            "<pet><type>p\u{e4}rrot &amp; co</type><price>9.5</price></pet><message>success</message>"
        ),
        "{}",
        r.text()
    );

    // Faults: an unknown pet and an unknown action, 500 from both.
    let (r, direct) = both(&action("GetPet"), &get_pet(42));
    assert_eq!((r.status, direct), (500, 500));
    assert!(
        r.text().contains(
            "<soap:Fault><faultcode>soap:Client</faultcode><faultstring>pet 42 not found</faultstring></soap:Fault>"
        ),
        "{}",
        r.text()
    );
    let (r, _) = both(&action("DeletePet"), &get_pet(1));
    assert_eq!(r.status, 500);
    assert!(
        r.text().contains("unknown SOAP action `DeletePet`"),
        "{}",
        r.text()
    );

    // Not SOAP: the demo's 415 comes back through the 4xx mapping as 400.
    let (r, direct) = both("Content-Type: application/json\r\n", "{}");
    assert_eq!((r.status, direct), (400, 415));
    assert!(r.text().contains("unsupported media type"), "{}", r.text());

    // The PetStore is still the default API.
    let r = support::client::get(gw.addr, "/prod/pets/2");
    assert_eq!(r.json()["type"], "cat");
}
