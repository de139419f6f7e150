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
            let (status, body) =
                common::reply(server.request(&method.to_uppercase(), &concrete, None));
            let unrouted = status == 404 && body["error"]["message"] == "not found";
            let wrong_method = status == 405;
            assert!(
                !unrouted && !wrong_method,
                "{method} {path} is documented but not routed ({status} {body})"
            );
        }
    }
}

/// The refusals a layer in front of every route gives are documented on
/// every operation that can get them (the API fuzzing run, `api_fuzz.rs`,
/// checks each answer's status against the document): 408, 413 and 503 on
/// all, 429 on every write, 401 wherever a session may be sent, 400
/// wherever there is a parameter or a body to get wrong.
#[test]
fn common_refusals_are_documented() {
    let server = TestServer::start(Db::Sqlite);
    let (status, doc) = server.get("/openapi.json", None);
    assert_eq!(status, 200);
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let mut expected = vec!["408", "413", "503"];
            if method != "get" {
                expected.push("429");
            }
            if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                expected.push("401");
            }
            let has_input = op["parameters"].as_array().is_some_and(|p| !p.is_empty())
                || op.get("requestBody").is_some();
            if has_input {
                expected.push("400");
            }
            for status in expected {
                let response = &op["responses"][status];
                if response.is_null() {
                    missing.push(format!("{method} {path}: {status}"));
                    continue;
                }
                // Inline, or the shared component: JSON in the error shape.
                let response = match response["$ref"].as_str() {
                    Some(r) => {
                        let name = r.trim_start_matches("#/components/responses/");
                        &doc["components"]["responses"][name]
                    }
                    None => response,
                };
                let schema = &response["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(
                    schema, "#/components/schemas/ErrorBody",
                    "{method} {path} {status}: {response}"
                );
            }
        }
    }
    assert!(missing.is_empty(), "undocumented refusals: {missing:?}");
}
