use std::path::Path;

use serde_json::json;

use super::*;
use crate::config::{Config, ConfigError};

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/x/config.toml"))
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

/// The issue's own example, plus every other key.
const FULL: &str = r#"
[agents.main]
backend = "openai"
base_url = "http://127.0.0.1:11434/v1"
model = "qwen2.5:7b"
api_key_env = "OPENAI_API_KEY"
system_prompt = "You are the ops assistant of this host."
temperature = 0.2
max_tokens = 512
tool_choice = "sessions_spawn"
tools = ["sessions_spawn", "sessions_wait"]
max_tool_rounds = 3
max_context_messages = 50
strict_tools = true
request_timeout_seconds = 20
extra_body = { top_p = 0.9, chat_template_kwargs = { enable_thinking = false } }
mcp_servers = [ { name = "fs", command = ["mcp-server-filesystem", "."], tools = ["read_file"] } ]
[agents.main.subagents]
allow_agents = ["worker"]
[agents.worker]
backend = "openai"
model = "qwen2.5:1.5b"
[session]
max_ping_pong_turns = 2
"#;

#[test]
fn every_openai_key_parses() {
    let c = parse(FULL).unwrap();
    let main = c.agent("main").unwrap();
    assert_eq!(main.backend, BackendKind::OpenAi);
    assert_eq!(main.base_url.as_deref(), Some("http://127.0.0.1:11434/v1"));
    assert_eq!(main.model.as_deref(), Some("qwen2.5:7b"));
    assert_eq!(main.api_key_env.as_deref(), Some("OPENAI_API_KEY"));
    assert_eq!(
        main.system_prompt.as_deref(),
        Some("You are the ops assistant of this host.")
    );
    assert_eq!(main.temperature, Some(0.2));
    assert_eq!(main.max_tokens, Some(512));
    assert_eq!(
        main.tool_choice,
        Some(ToolChoice::Tool("sessions_spawn".into()))
    );
    assert_eq!(
        main.tools,
        Some(vec!["sessions_spawn".into(), "sessions_wait".into()])
    );
    assert_eq!(main.max_tool_rounds(), 3);
    assert_eq!(main.max_context_messages(), 50);
    assert!(main.strict_tools);
    assert_eq!(main.request_timeout_seconds(), 20.0);
    assert_eq!(
        serde_json::Value::Object(main.extra_body.clone().unwrap()),
        json!({"top_p": 0.9, "chat_template_kwargs": {"enable_thinking": false}})
    );
    assert_eq!(
        main.mcp_servers,
        vec![McpServerConfig {
            name: "fs".into(),
            command: vec!["mcp-server-filesystem".into(), ".".into()],
            env: BTreeMap::new(),
            tools: Some(vec!["read_file".into()]),
        }]
    );
    assert_eq!(main.allowed_spawn_targets("main"), ["worker"]);
    assert_eq!(c.session.max_ping_pong_turns(), 2);

    let worker = c.agent("worker").unwrap();
    assert_eq!(worker.max_tool_rounds(), 8);
    assert_eq!(worker.max_context_messages(), 200);
    assert_eq!(worker.request_timeout_seconds(), 300.0);
    assert!(!worker.strict_tools && worker.tool_choice.is_none());
    assert_eq!(
        worker.allowed_spawn_targets("worker"),
        ["worker"],
        "default: only itself"
    );
}

#[test]
fn tool_choice_words_and_defaults() {
    for (word, choice) in [
        ("auto", ToolChoice::Auto),
        ("none", ToolChoice::None),
        ("required", ToolChoice::Required),
    ] {
        let c = parse(&format!(
            "[agents.main]\nbackend = \"openai\"\ntool_choice = \"{word}\"\n"
        ))
        .unwrap();
        assert_eq!(c.agent("main").unwrap().tool_choice, Some(choice));
    }
    let c = parse("").unwrap();
    assert_eq!(c.session.max_ping_pong_turns(), 5);
}

#[test]
fn bad_openai_keys_name_file_line_and_key() {
    let cases: &[(&str, &str)] = &[
        (
            "[agents.main]\nbackend = \"openai\"\nbase_url = \"localhost:11434\"\n",
            "/etc/x/config.toml:3: agents.main.base_url: \"localhost:11434\" is not an http:// or https:// URL like \"http://127.0.0.1:11434/v1\"",
        ),
        (
            "[agents.main]\nbackend = \"openai\"\ntemperature = 3.5\n",
            "/etc/x/config.toml:3: agents.main.temperature: must be between 0 and 2, not 3.5",
        ),
        (
            "[agents.main]\nbackend = \"openai\"\nmax_tokens = 0\n",
            "/etc/x/config.toml:3: agents.main.max_tokens: must be at least 1",
        ),
        (
            "[agents.main]\nbackend = \"openai\"\n\ntools = [\"sessions_list\", \"session_spawn\"]\n",
            "/etc/x/config.toml:4: agents.main.tools: \"session_spawn\" is not a session tool; the session tools are sessions_list, sessions_history, sessions_send, sessions_spawn, sessions_spawn_acp, sessions_wait (MCP servers' tools are picked with mcp_servers' own tools list)",
        ),
        (
            "[agents.main]\nbackend = \"openai\"\ntool_choice = \"read_file\"\n",
            "/etc/x/config.toml:3: agents.main.tool_choice: \"read_file\" is not auto, none, required or a tool this agent has",
        ),
        (
            "[agents.main]\nbackend = \"openai\"\ntools = [\"sessions_list\"]\ntool_choice = \"sessions_spawn\"\n",
            "/etc/x/config.toml:4: agents.main.tool_choice: \"sessions_spawn\" is not in this agent's tools list",
        ),
        (
            "[agents.main]\nbackend = \"openai\"\nmax_tool_rounds = 0\n",
            "/etc/x/config.toml:3: agents.main.max_tool_rounds: must be at least 1",
        ),
        (
            "[agents.main]\nbackend = \"openai\"\nmax_context_messages = 1\n",
            "/etc/x/config.toml:3: agents.main.max_context_messages: must be at least 2 (the session's task and the new message)",
        ),
        (
            "[agents.main]\nbackend = \"openai\"\nrequest_timeout_seconds = 0\n",
            "/etc/x/config.toml:3: agents.main.request_timeout_seconds: must be a number of seconds above 0",
        ),
        (
            "[agents.main]\nbackend = \"openai\"\n[agents.main.extra_body]\nstream = false\n",
            "/etc/x/config.toml:3: agents.main.extra_body: may not set \"stream\": openclaw always streams",
        ),
        (
            "[agents.main]\nbackend = \"openai\"\ncommand = [\"x\"]\n",
            "/etc/x/config.toml:3: agents.main.command: the openai backend takes no command; it talks to base_url (set backend = \"exec\" to run a command)",
        ),
        (
            "[agents.main]\nbackend = \"echo\"\nsystem_prompt = \"hi\"\n",
            "/etc/x/config.toml:3: agents.main.system_prompt: system_prompt applies to backend = \"openai\" only, and this agent's backend is \"echo\"",
        ),
        (
            "[agents.main]\nbackend = \"openai\"\n[agents.main.subagents]\nallow_agents = [\"main\", \"ghost\"]\n",
            "/etc/x/config.toml:4: agents.main.subagents.allow_agents: no agent \"ghost\" is configured; name agents that have an [agents.NAME] table, or \"*\" for any",
        ),
        (
            "[session]\nmax_ping_pong_turns = 6\n",
            "/etc/x/config.toml:2: session.max_ping_pong_turns: must be between 0 and 5",
        ),
        (
            "[agents.main]\nbackend = \"openai\"\n[[agents.main.mcp_servers]]\nname = \"fs\"\ncommand = []\n",
            "/etc/x/config.toml:3: agents.main.mcp_servers: server \"fs\" needs a command, e.g. command = [\"mcp-server-filesystem\", \".\"]",
        ),
        (
            "[agents.main]\nbackend = \"openai\"\nmcp_servers = [{ name = \"fs\", command = [\"a\"] }, { name = \"fs\", command = [\"b\"] }]\n",
            "/etc/x/config.toml:3: agents.main.mcp_servers: two servers are named \"fs\"",
        ),
        (
            "[agents.main]\nbackend = \"openai\"\nmcp_servers = [{ name = \"my fs\", command = [\"a\"] }]\n",
            "/etc/x/config.toml:3: agents.main.mcp_servers: server name \"my fs\" must be non-empty letters, digits, '_' or '-'",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(&error(text), expected, "for:\n{text}");
    }
}

#[test]
fn a_key_given_as_api_key_env_is_refused_without_being_repeated() {
    let secret = "sk-proj-abcdef0123456789";
    let err = error(&format!(
        "[agents.main]\nbackend = \"openai\"\napi_key_env = \"{secret}\"\n"
    ));
    assert_eq!(
        err,
        "/etc/x/config.toml:3: agents.main.api_key_env: must be the NAME of an environment variable holding the key (like OPENAI_API_KEY), never the key itself"
    );
    assert!(!err.contains("abcdef"));
}

#[test]
fn allow_agents_takes_a_star_and_the_implicit_default() {
    let c = parse(
        "[agents.worker]\nbackend = \"openai\"\n[agents.worker.subagents]\nallow_agents = [\"*\", \"main\"]\n",
    )
    .unwrap();
    assert_eq!(
        c.agent("worker").unwrap().allowed_spawn_targets("worker"),
        ["*", "main"]
    );
}

#[test]
fn unknown_keys_in_the_new_tables_are_caught() {
    let err = error("[agents.main]\nbackend = \"openai\"\n[agents.main.subagents]\nallow = []\n");
    assert!(err.contains(":4: agents.main.subagents.allow:"), "{err}");
    let err = error(
        "[agents.main]\nbackend = \"openai\"\nmcp_servers = [{ name = \"fs\", command = [\"a\"], cmd = 1 }]\n",
    );
    assert!(err.contains("cmd"), "{err}");
}

fn env(base_url: Option<&str>, model: Option<&str>, key: Option<&str>) -> OpenAiEnv {
    OpenAiEnv::from_vars(|name| {
        match name {
            "OPENAI_BASE_URL" => base_url,
            "OPENAI_MODEL" => model,
            "OPENAI_API_KEY" => key,
            _ => None,
        }
        .map(str::to_string)
    })
}

#[test]
fn the_default_agent_comes_from_config_then_environment_then_echo() {
    let empty = parse("").unwrap();
    let (agent, source) = empty.default_agent_from_env(&env(None, None, None));
    assert_eq!(source, DefaultAgentSource::Echo);
    assert_eq!(agent.backend, BackendKind::Echo);

    // Empty values are unset.
    let (_, source) = empty.default_agent_from_env(&env(Some(""), Some(" "), Some("")));
    assert_eq!(source, DefaultAgentSource::Echo);

    let local = env(Some("http://127.0.0.1:8080/v1/"), None, None);
    let (agent, source) = empty.default_agent_from_env(&local);
    assert_eq!(source, DefaultAgentSource::Environment);
    assert_eq!(agent.backend, BackendKind::OpenAi);
    assert_eq!(agent.openai_base_url(&local), "http://127.0.0.1:8080/v1");
    assert_eq!(agent.openai_model(&local), None, "then GET /models decides");
    assert_eq!(agent.openai_api_key_env(&local), None, "no key to send");

    let hosted = env(None, Some("gpt-4.1-mini"), Some("sk-x"));
    let (agent, source) = empty.default_agent_from_env(&hosted);
    assert_eq!(source, DefaultAgentSource::Environment);
    assert_eq!(agent.openai_base_url(&hosted), "https://api.openai.com/v1");
    assert_eq!(agent.openai_model(&hosted).as_deref(), Some("gpt-4.1-mini"));
    assert_eq!(
        agent.openai_api_key_env(&hosted).as_deref(),
        Some("OPENAI_API_KEY")
    );
    assert!(
        !format!("{hosted:?}{agent:?}").contains("sk-x"),
        "the key's value is never kept"
    );

    // A configured default wins over the environment, also under another name.
    let configured = parse("default_agent = \"ops\"\n[agents.ops]\nbackend = \"echo\"\n").unwrap();
    let (agent, source) = configured.default_agent_from_env(&hosted);
    assert_eq!(source, DefaultAgentSource::Configured);
    assert_eq!(agent.backend, BackendKind::Echo);
}

#[test]
fn the_environments_key_goes_only_to_the_environments_endpoint() {
    let e = env(Some("https://openrouter.ai/api/v1"), None, Some("sk-x"));
    let own_url =
        parse("[agents.main]\nbackend = \"openai\"\nbase_url = \"http://10.0.0.5:8000/v1\"\n")
            .unwrap()
            .agent("main")
            .unwrap();
    assert_eq!(own_url.openai_base_url(&e), "http://10.0.0.5:8000/v1");
    assert_eq!(own_url.openai_api_key_env(&e), None);

    let env_url = parse("[agents.main]\nbackend = \"openai\"\nmodel = \"m\"\n")
        .unwrap()
        .agent("main")
        .unwrap();
    assert_eq!(env_url.openai_base_url(&e), "https://openrouter.ai/api/v1");
    assert_eq!(
        env_url.openai_api_key_env(&e).as_deref(),
        Some("OPENAI_API_KEY")
    );
    assert_eq!(env_url.openai_model(&e).as_deref(), Some("m"));

    let named = parse(
        "[agents.main]\nbackend = \"openai\"\nbase_url = \"http://10.0.0.5:8000/v1\"\napi_key_env = \"VLLM_KEY\"\n",
    )
    .unwrap()
    .agent("main")
    .unwrap();
    assert_eq!(named.openai_api_key_env(&e).as_deref(), Some("VLLM_KEY"));
}
