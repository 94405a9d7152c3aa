//! The MCP server: `initialize`, `tools/list`, `tools/call`, cancellation and `ping` (the
//! SDK answers the handshake and pings; cancellation reaches a call through its token).

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    InitializeResult, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;

use super::calls::{self, tool_error};
use super::progress::ProgressSink;
use super::{DaemonConnection, DaemonLink, LinkError};
use crate::protocol::{ToolsListResult, methods};
use crate::tools::{ToolError, parse_tool_arguments};

const INSTRUCTIONS: &str = "openclaw's session tools: spawn sub-agent sessions on a task (sessions_spawn returns at once with a sessionKey and runId), send them messages, wait for their runs, and read their transcripts. Calls act as whoever runs this server; inside an openclaw run, as that run's session.";

pub struct SessionToolServer<L> {
    link: Arc<L>,
}

impl<L: DaemonLink> SessionToolServer<L> {
    pub fn new(link: L) -> SessionToolServer<L> {
        SessionToolServer {
            link: Arc::new(link),
        }
    }

    async fn connect(&self) -> Result<Box<dyn DaemonConnection>, ToolError> {
        self.link.connect().await.map_err(|e| tool_error(&e))
    }

    /// One `tools/call`: a fresh connection (so the caller is who it is now), the scope the
    /// daemon gives it, the arguments parsed against that scope, then the call.
    async fn call(
        &self,
        request: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let conn = match self.connect().await {
            Ok(conn) => conn,
            Err(e) => return Ok(failed(e.to_value(), &e)),
        };
        let listed = match tools_list(&*conn).await {
            Ok(listed) => listed,
            Err(e) => {
                let e = tool_error(&e);
                return Ok(failed(e.to_value(), &e));
            }
        };
        let arguments = request.arguments.map_or(Value::Null, Value::Object);
        let parsed = match parse_tool_arguments(&listed.scope.to_scope(), &request.name, arguments)
        {
            Ok(parsed) => parsed,
            // An unknown tool is a protocol error; arguments the tool cannot use are a tool
            // error the model can read and correct (MCP 2025-11-25, SEP-1303).
            Err(e) if e.kind == "unknown_tool" => {
                return Err(ErrorData::invalid_params(e.message, None));
            }
            Err(e) => return Ok(failed(e.to_value(), &e)),
        };
        let progress = context
            .meta
            .get_progress_token()
            .map(|token| ProgressSink::new(context.peer.clone(), token));
        match calls::run(&*conn, parsed.call.clone(), progress).await {
            Ok(value) => Ok(succeeded(parsed.result_value(value))),
            Err(e) => Ok(failed(parsed.error_value(&e), &e)),
        }
    }
}

async fn tools_list(conn: &dyn DaemonConnection) -> Result<ToolsListResult, LinkError> {
    let raw = conn
        .call(methods::TOOLS_LIST, Value::Object(Default::default()))
        .await?;
    serde_json::from_value(raw).map_err(|e| {
        LinkError::Unavailable(format!(
            "the daemon's tools.list answer is not what this openclaw expects ({e}); are openclaw and openclawd the same version?"
        ))
    })
}

/// The result as JSON text (for clients that read only `content`) and as structured
/// content.
fn succeeded(value: Value) -> CallToolResult {
    let text = serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string());
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(value);
    result
}

/// `isError: true` with the sentence as text, and `{"error": {kind, message}}` (with any
/// `ignoredFields`) as structured content.
fn failed(value: Value, e: &ToolError) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(format!(
        "{}: {}",
        e.kind, e.message
    ))]);
    result.structured_content = Some(value);
    result
}

impl<L: DaemonLink> ServerHandler for SessionToolServer<L> {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("openclaw", crate::VERSION))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let unavailable = |e: ToolError| ErrorData::internal_error(e.message, None);
        let conn = self.connect().await.map_err(unavailable)?;
        let listed = tools_list(&*conn)
            .await
            .map_err(|e| unavailable(tool_error(&e)))?;
        let tools = listed
            .tools
            .into_iter()
            .map(serde_json::from_value::<Tool>)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ErrorData::internal_error(format!("a tool definition: {e}"), None))?;
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // On `notifications/cancelled` the call is dropped, and its connection with it: the
        // daemon stops waiting for it. The SDK sends no response for a cancelled request.
        tokio::select! {
            result = self.call(request, &context) => result.map(CallToolResponse::Complete),
            _ = context.ct.cancelled() => Err(ErrorData::internal_error("the call was cancelled", None)),
        }
    }
}
