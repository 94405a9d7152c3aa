//! JSON Schemas of the tools' arguments, in plain or OpenAI strict form.

use serde_json::{Map, Value, json};

use super::{Field, Kind, ToolScope, agents_of};

pub(super) fn object_schema(fields: &[Field], scope: &ToolScope) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for f in fields {
        let optional = !f.required;
        properties.insert(f.name.to_string(), field_schema(f, scope, optional));
        if f.required || scope.strict {
            required.push(Value::String(f.name.to_string()));
        }
    }
    let mut schema = json!({ "type": "object", "properties": properties });
    // Some servers' validators refuse an empty `required`.
    if !required.is_empty() {
        schema["required"] = Value::Array(required);
    }
    schema["additionalProperties"] = Value::Bool(false);
    schema
}

/// `{"type": t}`, or in strict form for an optional field `{"type": [t, "null"]}`.
fn typed(t: &str, nullable: bool) -> Value {
    if nullable {
        json!({ "type": [t, "null"] })
    } else {
        json!({ "type": t })
    }
}

fn enum_values(values: &[&str], nullable: bool) -> Value {
    let mut all: Vec<Value> = values
        .iter()
        .map(|v| Value::String(v.to_string()))
        .collect();
    if nullable {
        all.push(Value::Null);
    }
    Value::Array(all)
}

fn field_schema(f: &Field, scope: &ToolScope, optional: bool) -> Value {
    let nullable = optional && scope.strict;
    let mut schema = match f.kind {
        Kind::Text => typed("string", nullable),
        Kind::Number { min } => {
            let mut s = typed("number", nullable);
            s["minimum"] = json!(min);
            s
        }
        Kind::Integer { min } => {
            let mut s = typed("integer", nullable);
            s["minimum"] = json!(min);
            s
        }
        Kind::Bool => typed("boolean", nullable),
        Kind::Choice(values) => {
            let mut s = typed("string", nullable);
            s["enum"] = enum_values(values, nullable);
            s
        }
        Kind::Agent(runtime) => {
            let mut s = typed("string", nullable);
            s["enum"] = enum_values(&agents_of(scope, runtime), nullable);
            s
        }
        Kind::Texts(values) => {
            let mut s = typed("array", nullable);
            s["items"] = json!({ "type": "string", "enum": values });
            s
        }
        Kind::Attachments => {
            let mut s = typed("array", nullable);
            let strict = scope.strict;
            let encoding = if strict {
                json!({ "type": ["string", "null"], "enum": ["utf8", "base64", null], "description": "utf8 (default) or base64." })
            } else {
                json!({ "type": "string", "enum": ["utf8", "base64"], "description": "utf8 (default) or base64." })
            };
            let required: &[&str] = if strict {
                &["name", "content", "encoding"]
            } else {
                &["name", "content"]
            };
            s["items"] = json!({
                "type": "object",
                "properties": {
                    "name": { "type": "string", "description": "A plain file name, no '/'." },
                    "content": { "type": "string", "description": "The file's content." },
                    "encoding": encoding,
                },
                "required": required,
                "additionalProperties": false,
            });
            s
        }
    };
    let mut doc = f.doc.to_string();
    if let Kind::Agent(runtime) = f.kind
        && optional
        && let Some(first) = agents_of(scope, runtime).first()
    {
        doc.push_str(&format!(" Default: {first}."));
    }
    schema["description"] = Value::String(doc);
    schema
}
