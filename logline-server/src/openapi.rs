//! The OpenAPI 3.1 document, generated from the route annotations.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Document metadata and security schemes; the paths come from the router
/// ([`crate::Server::router`]), so the document lists exactly the routes served.
#[derive(OpenApi)]
#[openapi(
    info(title = "LogLine API", description = "The HTTP API of the LogLine agent OS."),
    modifiers(&SecuritySchemes),
    tags(
        (name = "health"), (name = "auth"), (name = "workflows"), (name = "runs"),
        (name = "tools"), (name = "agents"), (name = "policies"), (name = "audit"), (name = "metrics"), (name = "alerts"),
        (name = "chat"), (name = "files"), (name = "apps")
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or API key")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// Error answers every operation can give, as RFC 9457 problems: each documented error
/// response gets the `application/problem+json` media type, and the errors the layers add
/// (400, 401 on secured routes, 413 and 415 on bodies, 429) are documented everywhere.
pub fn document_problems(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};

    let problem = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    crate::error::PROBLEM_JSON,
                    Content::new(Some(Ref::from_schema_name("Problem"))),
                )
                .build(),
        )
    };
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
            let has_body = op.request_body.is_some();
            let responses = &mut op.responses.responses;
            for (code, response) in responses.iter_mut() {
                if code.starts_with('4') || code.starts_with('5') {
                    let description = match response {
                        RefOr::T(r) => r.description.clone(),
                        RefOr::Ref(_) => String::new(),
                    };
                    *response = problem(&description);
                }
            }
            let mut add = |code: &str, description: &str| {
                responses
                    .entry(code.to_string())
                    .or_insert_with(|| problem(description));
            };
            add("400", "Malformed or invalid input");
            add("429", "Rate limit reached (see `Retry-After`)");
            // A credential that is sent is checked on every route, public ones included.
            add("401", "Missing, invalid, expired or revoked credentials");
            if secured {
                add("403", "The caller may not do this");
            }
            if has_body {
                add("413", "The body is too large");
                add("415", "The body is not JSON");
            }
        }
    }
}
