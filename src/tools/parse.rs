//! A model's tool-call arguments, checked field by field against the tool's fields and
//! turned into the protocol's params.

use serde_json::{Map, Value, json};

use super::{
    AgentRuntime, Field, Kind, ParsedToolCall, SESSIONS_SPAWN, SESSIONS_SPAWN_ACP, SessionToolCall,
    Tool, ToolError, ToolScope, agents_of,
};

pub(super) fn parse_with(
    scope: &ToolScope,
    tool: Tool,
    arguments: Value,
) -> Result<ParsedToolCall, ToolError> {
    let name = tool.name();
    // Servers send "" (or null) for a call without arguments.
    let arguments = if arguments.is_null() {
        Value::Object(Map::new())
    } else {
        arguments
    };
    let Value::Object(given) = arguments else {
        return Err(ToolError::invalid_params(format!(
            "the arguments of {name} must be a JSON object, e.g. {}",
            tool.example()
        )));
    };
    let fields = tool.fields();
    let mut params = Map::new();
    let mut ignored = Vec::new();
    for (key, value) in given {
        let Some(f) = fields.iter().find(|f| f.name == key) else {
            ignored.push(key);
            continue;
        };
        // Strict-mode callers send null for every field they do not use.
        if value.is_null() {
            continue;
        }
        let checked = check_value(scope, tool, f, value, &mut ignored)?;
        params.insert(key, checked);
    }
    for f in fields.iter().filter(|f| f.required) {
        if !params.contains_key(f.name) {
            return Err(ToolError::invalid_params(format!(
                "{name} needs \"{}\": {} For example {}",
                f.name,
                f.doc,
                tool.example()
            )));
        }
    }
    if let Some(runtime) = tool.runtime()
        && !params.contains_key("agentId")
        && let Some(first) = agents_of(scope, runtime).first()
    {
        params.insert("agentId".into(), Value::String(first.to_string()));
    }
    if tool == Tool::SpawnAcp {
        params.insert("runtime".into(), Value::String("acp".into()));
    }
    if tool == Tool::Wait && !params.contains_key("runId") && !params.contains_key("sessionKey") {
        return Err(ToolError::invalid_params(
            "sessions_wait needs \"runId\" (from sessions_spawn or sessions_send) or \"sessionKey\"",
        ));
    }
    let params = Value::Object(params);
    let call = match tool {
        Tool::List => serde_json::from_value(params).map(SessionToolCall::List),
        Tool::History => serde_json::from_value(params).map(SessionToolCall::History),
        Tool::Send => serde_json::from_value(params).map(SessionToolCall::Send),
        Tool::Spawn | Tool::SpawnAcp => {
            serde_json::from_value(params).map(|p| SessionToolCall::Spawn(Box::new(p)))
        }
        Tool::Wait => serde_json::from_value(params).map(SessionToolCall::Wait),
    }
    .map_err(|e| ToolError::invalid_params(format!("the arguments of {name}: {e}")))?;
    // In a stable order, whatever order the model wrote its arguments in.
    ignored.sort();
    Ok(ParsedToolCall {
        call,
        ignored_fields: ignored,
    })
}

fn wrong_type(tool: Tool, f: &Field, want: &str, got: &Value) -> ToolError {
    ToolError::invalid_params(format!(
        "{}: \"{}\" must be {want}, not {}",
        tool.name(),
        f.name,
        short_json(got)
    ))
}

fn short_json(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 80 {
        let cut: String = text.chars().take(77).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// Checks one given value against its field; models often quote numbers and booleans, which
/// are accepted as what they clearly mean.
fn check_value(
    scope: &ToolScope,
    tool: Tool,
    f: &Field,
    value: Value,
    ignored: &mut Vec<String>,
) -> Result<Value, ToolError> {
    match f.kind {
        Kind::Text => match value {
            Value::String(_) => Ok(value),
            other => Err(wrong_type(tool, f, "a string", &other)),
        },
        Kind::Number { min } => {
            let n = as_number(&value).ok_or_else(|| wrong_type(tool, f, "a number", &value))?;
            if !n.is_finite() || n < min {
                return Err(ToolError::invalid_params(format!(
                    "{}: \"{}\" must be a number of at least {min}, not {n}",
                    tool.name(),
                    f.name
                )));
            }
            Ok(json!(n))
        }
        Kind::Integer { min } => {
            let n = as_number(&value)
                .filter(|n| n.fract() == 0.0)
                .ok_or_else(|| wrong_type(tool, f, "a whole number", &value))?;
            // A whole number out of range is told its range, not that it is not whole.
            if n < min as f64 || n > u32::MAX as f64 {
                return Err(ToolError::invalid_params(format!(
                    "{}: \"{}\" must be a whole number from {min} to {}, not {n}",
                    tool.name(),
                    f.name,
                    u32::MAX
                )));
            }
            let n = n as u64;
            Ok(json!(n))
        }
        Kind::Bool => match &value {
            Value::Bool(_) => Ok(value),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            other => Err(wrong_type(tool, f, "true or false", other)),
        },
        Kind::Choice(values) => {
            let Value::String(s) = &value else {
                return Err(wrong_type(tool, f, &one_of(values), &value));
            };
            let lower = s.trim().to_ascii_lowercase();
            match values.iter().find(|v| **v == lower) {
                Some(v) => Ok(Value::String(v.to_string())),
                None => Err(ToolError::invalid_params(format!(
                    "{}: \"{}\" must be {}, not \"{s}\"",
                    tool.name(),
                    f.name,
                    one_of(values)
                ))),
            }
        }
        Kind::Agent(runtime) => {
            let Value::String(id) = &value else {
                return Err(wrong_type(tool, f, "an agent id", &value));
            };
            let allowed = agents_of(scope, runtime);
            if allowed.contains(&id.as_str()) {
                return Ok(value);
            }
            let other = scope
                .allowed_agents
                .iter()
                .find(|(a, r)| a == id && *r != runtime);
            let message = match other {
                Some((_, AgentRuntime::Acp)) => {
                    format!("agent \"{id}\" is an ACP agent: spawn it with {SESSIONS_SPAWN_ACP}")
                }
                Some((_, AgentRuntime::Native)) => {
                    format!("agent \"{id}\" is not an ACP agent: spawn it with {SESSIONS_SPAWN}")
                }
                None => format!(
                    "{}: agentId \"{id}\" is not an agent you may use; use one of: {}",
                    tool.name(),
                    allowed.join(", ")
                ),
            };
            Err(ToolError::invalid_params(message))
        }
        Kind::Texts(values) => {
            let items = match value {
                Value::Array(items) => items,
                Value::String(s) => vec![Value::String(s)],
                other => return Err(wrong_type(tool, f, "a list of strings", &other)),
            };
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) if values.is_empty() || values.contains(&s.as_str()) => {
                        out.push(Value::String(s))
                    }
                    other => {
                        return Err(wrong_type(
                            tool,
                            f,
                            &format!("a list of {}", one_of(values)),
                            &other,
                        ));
                    }
                }
            }
            Ok(Value::Array(out))
        }
        Kind::Attachments => {
            let Value::Array(items) = value else {
                return Err(wrong_type(
                    tool,
                    f,
                    "a list of {\"name\", \"content\"} objects",
                    &value,
                ));
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let Value::Object(obj) = item else {
                    return Err(wrong_type(
                        tool,
                        f,
                        "a list of {\"name\", \"content\"} objects",
                        &item,
                    ));
                };
                let mut kept = Map::new();
                for (k, v) in obj {
                    match (k.as_str(), v) {
                        (_, Value::Null) => {}
                        ("name" | "content", Value::String(s)) => {
                            kept.insert(k, Value::String(s));
                        }
                        ("encoding", Value::String(s)) if s == "utf8" || s == "base64" => {
                            kept.insert(k, Value::String(s));
                        }
                        ("name" | "content" | "encoding", other) => {
                            return Err(ToolError::invalid_params(format!(
                                "{}: attachments[{i}].{k} must be a string{}, not {}",
                                tool.name(),
                                if k == "encoding" {
                                    " (utf8 or base64)"
                                } else {
                                    ""
                                },
                                short_json(&other)
                            )));
                        }
                        _ => ignored.push(format!("attachments[{i}].{k}")),
                    }
                }
                for needed in ["name", "content"] {
                    if !kept.contains_key(needed) {
                        return Err(ToolError::invalid_params(format!(
                            "{}: attachments[{i}] needs \"{needed}\"",
                            tool.name()
                        )));
                    }
                }
                out.push(Value::Object(kept));
            }
            Ok(Value::Array(out))
        }
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

fn one_of(values: &[&str]) -> String {
    match values {
        [] => "a string".into(),
        [one] => format!("\"{one}\""),
        _ => format!(
            "one of {}",
            values
                .iter()
                .map(|v| format!("\"{v}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub(super) fn with_ignored_fields(mut value: Value, ignored: &[String]) -> Value {
    if ignored.is_empty() {
        return value;
    }
    if !value.is_object() {
        value = json!({ "result": value });
    }
    let Some(obj) = value.as_object_mut() else {
        return value;
    };
    let entry = obj
        .entry("ignoredFields")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !entry.is_array() {
        *entry = Value::Array(Vec::new());
    }
    if let Value::Array(list) = entry {
        for name in ignored {
            if !list.iter().any(|v| v.as_str() == Some(name)) {
                list.push(Value::String(name.clone()));
            }
        }
    }
    value
}
