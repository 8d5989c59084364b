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
        (name = "tools"), (name = "agents"), (name = "policies"), (name = "audit"), (name = "metrics")
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
