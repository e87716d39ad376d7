//! A file server for unit tests of downloads, on the one loopback test server
//! ([`crate::test_http`]): fixed bodies by path, optionally a required `Authorization` per path
//! (401 otherwise), S3's answer to a request signed for another region, and redirects.

use crate::test_http::{Request, Response};

type Routes = Vec<(String, Vec<u8>)>;

pub struct Server(crate::test_http::Server);

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
        Server(crate::test_http::Server::answering(move |req| {
            answer(req, &routes, &auth, region.as_deref())
        }))
    }

    pub fn url(&self) -> String {
        self.0.url.clone()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.0.requests()
    }
}

fn answer(
    req: &Request,
    routes: &Routes,
    auth: &[(String, String)],
    region: Option<&str>,
) -> Response {
    // Routes and auth are keyed by the request target, query included.
    let target = match req.query.as_str() {
        "" => req.path.clone(),
        q => format!("{}?{q}", req.path),
    };
    let expected = auth.iter().find(|(p, _)| *p == target).map(|(_, a)| a);
    let signed_elsewhere = region.is_some_and(|r| {
        !req.header("authorization")
            .is_some_and(|a| a.contains(&format!("/{r}/s3/aws4_request")))
    });
    if signed_elsewhere {
        let body = format!(
            "<Error><Code>AuthorizationHeaderMalformed</Code><Region>{}</Region></Error>",
            region.unwrap_or("")
        );
        return Response::new(400, "application/xml", body);
    }
    if expected.is_some_and(|a| req.header("authorization") != Some(a.as_str())) {
        return Response::new(401, "text/plain", "");
    }
    if req.method == "PUT" {
        return Response::new(200, "text/plain", "");
    }
    match routes.iter().find(|(p, _)| *p == target) {
        // A route whose body is `REDIRECT <url>` answers 302 to that URL.
        Some((_, d)) => match d.strip_prefix(b"REDIRECT ") {
            Some(to) => Response::new(302, "text/plain", "")
                .header("location", String::from_utf8_lossy(to).into_owned()),
            None => Response::new(200, "application/octet-stream", d.clone()),
        },
        None => Response::new(
            404,
            "application/xml",
            "<Error><Code>NoSuchKey</Code></Error>",
        ),
    }
}
