//! `/mcp`: the Model Context Protocol over Streamable HTTP, for AI
//! assistants and agents. Tools `search`, `get_document` and `list_spaces`
//! answer with exactly the permissions of `/v1/search`: the same
//! authentication middleware runs first and puts the caller's [`Viewer`]
//! into the request, which the tools read.
//!
//! The service is stateless (no MCP sessions): every POST is authenticated
//! on its own, so a session can never outlive or change its caller's
//! credentials.

use super::{AppState, DEFAULT_LIMIT, MAX_LIMIT, MAX_QUERY_CHARS};
use crate::auth::Viewer;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// The tower service mounted at `/mcp`.
pub fn service(state: AppState) -> StreamableHttpService<Tools, NeverSessionManager> {
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true);
    // The default accepts only loopback `Host`s, a guard against DNS
    // rebinding for servers that trust whoever reaches them. With real
    // authentication the server is reached by Service name, so the token,
    // not the Host header, is what protects it.
    if !state.auth.is_unchecked() {
        config = config.disable_allowed_hosts();
    }
    StreamableHttpService::new(
        move || Ok(Tools::new(state.clone())),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}

/// The MCP server of one request.
#[derive(Clone)]
pub struct Tools {
    state: AppState,
}

impl Tools {
    fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    query: String,
    #[serde(default)]
    space: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocumentArgs {
    id: String,
}

fn schema(value: serde_json::Value) -> Arc<JsonObject> {
    match value {
        serde_json::Value::Object(map) => Arc::new(map),
        _ => Arc::new(JsonObject::new()),
    }
}

fn tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "search",
            "Full-text search of the Confluence content you may see. Returns title, URL, snippet and id of each hit.",
            schema(json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "Words to search for", "minLength": 1, "maxLength": MAX_QUERY_CHARS},
                    "space": {"type": "string", "description": "Only hits from this space key (e.g. ENG)"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}
                },
                "required": ["query"],
                "additionalProperties": false
            })),
        ),
        Tool::new(
            "get_document",
            "One document by the id a search returned: its Markdown body, title and link.",
            schema(json!({
                "type": "object",
                "properties": {"id": {"type": "string", "description": "Document id from search"}},
                "required": ["id"],
                "additionalProperties": false
            })),
        ),
        Tool::new(
            "list_spaces",
            "The Confluence spaces you may see: key, name, URL and item count.",
            schema(json!({"type": "object", "properties": {}, "additionalProperties": false})),
        ),
    ]
}

/// A failed tool call the model can read and react to.
fn tool_error(message: impl Into<String>) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(message.into())]).into()
}

fn args<T: serde::de::DeserializeOwned>(raw: Option<JsonObject>) -> Result<T, ErrorData> {
    serde_json::from_value(serde_json::Value::Object(raw.unwrap_or_default()))
        .map_err(|e| ErrorData::invalid_params(format!("invalid arguments: {e}"), None))
}

impl Tools {
    async fn search(&self, viewer: &Viewer, args: SearchArgs) -> CallToolResponse {
        let query = args.query.trim();
        if query.is_empty() || query.chars().count() > MAX_QUERY_CHARS {
            return tool_error(format!(
                "`query` must have 1 to {MAX_QUERY_CHARS} characters"
            ));
        }
        let limit = match args.limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=MAX_LIMIT as u64).contains(&n) => n as usize,
            Some(_) => return tool_error(format!("`limit` must be from 1 to {MAX_LIMIT}")),
        };
        let segments = viewer.grant.effective(&[]);
        // The store has no space filter: take the deepest page allowed and
        // filter it, so a space filter sees the top MAX_LIMIT matches.
        let fetch = if args.space.is_some() {
            MAX_LIMIT
        } else {
            limit
        };
        let hits = match self.state.search.search(query, &segments, fetch).await {
            Ok(hits) => hits,
            Err(e) => {
                tracing::error!(error = %e, "store failed to answer an MCP search");
                return tool_error("the search could not be completed");
            }
        };
        let hits: Vec<serde_json::Value> = hits
            .into_iter()
            .filter(|h| args.space.as_deref().is_none_or(|s| s == h.space_key))
            .take(limit)
            .map(|h| {
                json!({"id": h.id, "title": h.title, "url": h.url, "snippet": h.snippet, "space": h.space_key})
            })
            .collect();
        CallToolResult::structured(json!({ "hits": hits })).into()
    }

    async fn get_document(&self, viewer: &Viewer, args: DocumentArgs) -> CallToolResponse {
        let segments = viewer.grant.effective(&[]);
        match self.state.search.get(&args.id, &segments).await {
            Ok(Some(doc)) => {
                let text = format!(
                    "# {}\n\nSource: {}\n\n{}",
                    doc.page.title,
                    doc.page.url,
                    strip_title(&doc.page.body_markdown, &doc.page.title)
                );
                CallToolResult::success(vec![ContentBlock::text(text)]).into()
            }
            // Same answer for missing and not visible.
            Ok(None) => tool_error("document not found"),
            Err(e) => {
                tracing::error!(error = %e, "store failed to answer an MCP get_document");
                tool_error("the document could not be read")
            }
        }
    }

    fn list_spaces(&self, viewer: &Viewer) -> CallToolResponse {
        let spaces = self.state.spaces.visible(&viewer.grant.effective(&[]));
        CallToolResult::structured(json!({ "spaces": spaces })).into()
    }
}

/// The body without its leading `# title` line, which the answer already has.
fn strip_title<'a>(body: &'a str, title: &str) -> &'a str {
    body.strip_prefix(&format!("# {title}"))
        .map(str::trim_start)
        .unwrap_or(body)
}

impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "confluence-operator",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Search and read the Confluence knowledge this caller may see. \
                 Use search first, then get_document with a hit's id.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // Put there by the authentication middleware; without it nothing
        // is served.
        let viewer = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Viewer>())
            .cloned()
            .ok_or_else(|| ErrorData::internal_error("request is not authenticated", None))?;
        match request.name.as_ref() {
            "search" => Ok(self.search(&viewer, args(request.arguments)?).await),
            "get_document" => Ok(self.get_document(&viewer, args(request.arguments)?).await),
            "list_spaces" => Ok(self.list_spaces(&viewer)),
            other => Err(ErrorData::invalid_params(
                format!("no tool named {other}"),
                None,
            )),
        }
    }
}
