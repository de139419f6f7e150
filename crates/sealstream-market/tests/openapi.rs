//! `/openapi.json` describes the routes the server serves: every documented
//! path answers something other than the router's 404, and a set of routes
//! every client relies on is documented.

mod common;

use common::{Db, TestServer};

#[test]
fn documented_paths_are_served() {
    let server = TestServer::start(Db::Sqlite);
    let (status, doc) = server.get("/openapi.json", None);
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.contains_key("/healthz"));
    assert!(doc["components"]["securitySchemes"]["session"].is_object());
    for (path, item) in paths {
        // Fill path parameters with something plausible.
        let concrete: String = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().unwrap().keys() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let response = server
                .request(&method.to_uppercase(), &concrete, None)
                .call();
            let (status, body) = common::reply(response);
            let unrouted = status == 404 && body["error"]["message"] == "not found";
            let wrong_method = status == 405;
            assert!(
                !unrouted && !wrong_method,
                "{method} {path} is documented but not routed ({status} {body})"
            );
        }
    }
}
