//! A minimal HTTP/1.1 server on 127.0.0.1 for unit tests of downloads: fixed bodies by path,
//! optional required `Authorization` per path, and a log of what each request carried.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct Server {
    port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

type Routes = Vec<(String, Vec<u8>)>;

impl Server {
    pub fn start(routes: Routes) -> Server {
        Server::with_auth(routes, Vec::new())
    }

    /// `auth`: (path, expected Authorization header value); others get 401.
    pub fn with_auth(routes: Routes, auth: Vec<(String, String)>) -> Server {
        Server::full(routes, auth, None)
    }

    /// Like S3 for a bucket in `region`: a request signed for another region gets 400 and
    /// `<Region>` in the body.
    pub fn s3_in_region(routes: Routes, region: &str) -> Server {
        Server::full(routes, Vec::new(), Some(region.to_string()))
    }

    fn full(routes: Routes, auth: Vec<(String, String)>, region: Option<String>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or("").to_string();
                let path = parts.next().unwrap_or("").to_string();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.trim_end().split_once(':') {
                        headers.push((k.trim().to_string(), v.trim().to_string()));
                    }
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let req = Seen {
                    method,
                    path: path.clone(),
                    headers,
                };
                let expected = auth.iter().find(|(p, _)| *p == path).map(|(_, a)| a);
                let wrong_region = region.as_ref().is_some_and(|r| {
                    !req.header("authorization")
                        .is_some_and(|a| a.contains(&format!("/{r}/s3/aws4_request")))
                });
                let region_body = format!(
                    "<Error><Code>AuthorizationHeaderMalformed</Code><Region>{}</Region></Error>",
                    region.as_deref().unwrap_or("")
                );
                let (status, data): (&str, &[u8]) = if wrong_region {
                    ("400 Bad Request", region_body.as_bytes())
                } else if expected.is_some_and(|a| req.header("authorization") != Some(a.as_str()))
                {
                    ("401 Unauthorized", b"")
                } else if req.method == "PUT" {
                    ("200 OK", b"")
                } else {
                    match routes.iter().find(|(p, _)| *p == path) {
                        Some((_, d)) => ("200 OK", d),
                        None => ("404 Not Found", b"<Error><Code>NoSuchKey</Code></Error>"),
                    }
                };
                log.lock().unwrap().push(req);
                // A route whose body is `REDIRECT <url>` answers 302 to that URL.
                let (status, data, location) = match data.strip_prefix(b"REDIRECT ") {
                    Some(to) => (
                        "302 Found",
                        &b""[..],
                        format!("Location: {}\r\n", String::from_utf8_lossy(to)),
                    ),
                    None => (status, data, String::new()),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\n{location}Content-Length: {}\r\nConnection: close\r\n\r\n",
                    data.len()
                );
                let _ = stream.write_all(data);
            }
        });
        Server { port, seen }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}
