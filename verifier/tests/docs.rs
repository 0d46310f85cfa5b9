//! The documentation, checked against the code, so that it cannot drift:
//!
//! - `x402.example.toml` names every setting of [`Config`] (the `pub` fields of the
//!   structs in `src/config/mod.rs`) and nothing else, each with its meaning and its
//!   environment variable (or "(no environment override)"); as it stands it is exactly
//!   the defaults, and with every commented-out setting uncommented it still parses;
//! - `docs/reasons.md` lists exactly the codes of [`Reason::ALL`], each with its meaning;
//! - the `X402_*` variables the example names are exactly those the verifier reads.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use x402_verifier::config::Config;
use x402_verifier::Reason;

const EXAMPLE: &str = include_str!("../../x402.example.toml");
const EXAMPLE_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../x402.example.toml");
const REASONS: &str = include_str!("../../docs/reasons.md");
const CONFIG_SOURCE: &str = include_str!("../src/config/mod.rs");
const ENV_SOURCE: &str = include_str!("../src/config/env.rs");
const MAIN_SOURCE: &str = include_str!("../bin/src/main.rs");

/// A setting: its table (`""` for the top level, `payment`, `routes`, ...) and its key.
type Setting = (String, String);

/// One field of a configuration struct.
struct Field {
    name: String,
    ty: String,
    /// `#[serde(skip)]`: set from the environment only, never from the file.
    env_only: bool,
}

/// The `pub` fields of every `pub struct` in `src/config/mod.rs`, by struct name.
fn config_structs() -> BTreeMap<String, Vec<Field>> {
    let mut structs = BTreeMap::new();
    let mut current: Option<(String, Vec<Field>)> = None;
    let mut skip = false;
    for line in CONFIG_SOURCE.lines() {
        if let Some(name) = line
            .strip_prefix("pub struct ")
            .and_then(|rest| rest.strip_suffix(" {"))
        {
            current = Some((name.trim().to_string(), Vec::new()));
            skip = false;
            continue;
        }
        let Some((_, fields)) = current.as_mut() else {
            continue;
        };
        if line == "}" {
            let (name, fields) = current.take().unwrap();
            structs.insert(name, fields);
            continue;
        }
        let line = line.trim();
        if line.starts_with("#[") {
            skip |= line.contains("serde(skip)") || line.contains("skip_deserializing");
        } else if let Some(field) = line.strip_prefix("pub ") {
            let (name, ty) = field.split_once(':').expect("a field: `pub name: Type,`");
            fields.push(Field {
                name: name.trim().to_string(),
                ty: ty.trim().trim_end_matches(',').to_string(),
                env_only: skip,
            });
            skip = false;
        }
    }
    assert!(
        structs.get("Config").is_some_and(|f| f.len() >= 10),
        "src/config/mod.rs no longer reads as expected: {:?}",
        structs.keys().collect::<Vec<_>>()
    );
    structs
}

/// Every setting of the configuration file, and the fields set from the environment only.
fn settings() -> (BTreeSet<Setting>, BTreeSet<Setting>) {
    let structs = config_structs();
    let (mut file, mut env_only) = (BTreeSet::new(), BTreeSet::new());
    let mut add = |table: &str, field: &Field| {
        let setting = (table.to_string(), field.name.clone());
        if field.env_only {
            env_only.insert(setting);
        } else {
            file.insert(setting);
        }
    };
    for field in &structs["Config"] {
        let inner = field.ty.trim_start_matches("Vec<").trim_end_matches('>');
        match structs.get(inner) {
            Some(table) => {
                for nested in table {
                    let deeper = nested.ty.trim_start_matches("Vec<").trim_end_matches('>');
                    assert!(
                        !structs.contains_key(deeper),
                        "{}.{} is a table in a table: teach this test to read it",
                        field.name,
                        nested.name
                    );
                    add(&field.name, nested);
                }
            }
            None => add("", field),
        }
    }
    (file, env_only)
}

/// What `src/config/env.rs` sets from each variable: `env.set("X402_…", |v| p.field = v)`
/// with `let p = &mut self.payment;` read as `payment.field`.
fn env_targets() -> BTreeMap<Setting, String> {
    let mut aliases = BTreeMap::new();
    for line in ENV_SOURCE.lines() {
        let line = line.trim();
        if let Some((name, table)) = line
            .strip_prefix("let ")
            .and_then(|rest| rest.split_once(" = &mut self."))
        {
            aliases.insert(name.to_string(), table.trim_end_matches(';').to_string());
        }
    }
    let mut targets = BTreeMap::new();
    for call in ENV_SOURCE.split("env.set(\"").skip(1) {
        let name = &call[..call.find('"').unwrap()];
        let body = &call[..call.find(")?;").expect("env.set(...)?;")];
        let assignment = body
            .find(" = ")
            .unwrap_or_else(|| panic!("{name}: no assignment in {body}"));
        let start = body[..assignment]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .map_or(0, |i| i + 1);
        let mut path: Vec<String> = body[start..assignment]
            .split('.')
            .map(str::to_string)
            .collect();
        if path[0] == "self" {
            path.remove(0);
        } else {
            let table = aliases
                .get(&path[0])
                .unwrap_or_else(|| panic!("{name}: what is {}?", path[0]));
            path[0] = table.clone();
        }
        let setting = match path.as_slice() {
            [key] => (String::new(), key.clone()),
            [table, key] => (table.clone(), key.clone()),
            _ => panic!("{name} sets {path:?}"),
        };
        let earlier = targets.insert(setting.clone(), name.to_string());
        assert!(earlier.is_none(), "{setting:?} is set by two variables");
    }
    targets
}

/// A setting as the example writes it, live (`key = value`) or commented out
/// (`# key = value`), with the comment above it.
struct Documented {
    setting: Setting,
    comment: Vec<String>,
}

fn is_setting(line: &str) -> bool {
    line.split_once(" = ").is_some_and(|(key, _)| {
        !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    })
}

/// A table header, live or commented out: `[payment]`, `# [[routes]]`.
fn table_header(line: &str) -> Option<&str> {
    let line = line.strip_prefix("# ").unwrap_or(line);
    let name = line.strip_prefix('[')?.strip_suffix(']')?;
    Some(name.trim_start_matches('[').trim_end_matches(']'))
}

/// The example's settings in order, and each table's text.
fn documented() -> (Vec<Documented>, BTreeMap<String, String>) {
    let (mut settings, mut tables) = (Vec::new(), BTreeMap::<String, String>::new());
    let (mut table, mut comment) = (String::new(), Vec::new());
    for line in EXAMPLE.lines() {
        if let Some(name) = table_header(line) {
            table = name.to_string();
            comment.clear();
        } else if line.trim().is_empty() {
            comment.clear();
        } else if is_setting(line) || line.strip_prefix("# ").is_some_and(is_setting) {
            let line = line.strip_prefix("# ").unwrap_or(line);
            let key = line.split_once(" = ").unwrap().0.to_string();
            settings.push(Documented {
                setting: (table.clone(), key),
                comment: std::mem::take(&mut comment),
            });
        } else if let Some(text) = line.strip_prefix('#') {
            comment.push(text.trim().to_string());
        } else {
            panic!("x402.example.toml: a line that is no setting, header or comment: {line}");
        }
        let text = tables.entry(table.clone()).or_default();
        text.push_str(line);
        text.push('\n');
    }
    (settings, tables)
}

/// The example with every commented-out setting (and table header) uncommented.
fn uncommented() -> String {
    EXAMPLE
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if is_setting(rest) || table_header(rest).is_some() => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn shown(settings: &BTreeSet<Setting>) -> Vec<String> {
    settings
        .iter()
        .map(|(table, key)| match table.as_str() {
            "" => key.clone(),
            table => format!("{table}.{key}"),
        })
        .collect()
}

#[test]
fn the_example_configuration_names_every_setting_and_nothing_else() {
    let (file, env_only) = settings();
    let (documented, tables) = documented();
    let mut named = BTreeSet::new();
    for entry in &documented {
        assert!(
            named.insert(entry.setting.clone()),
            "{:?} twice",
            entry.setting
        );
    }
    let missing: BTreeSet<_> = file.difference(&named).cloned().collect();
    let unknown: BTreeSet<_> = named.difference(&file).cloned().collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "x402.example.toml lacks {:?} and names settings the verifier does not have: {:?}",
        shown(&missing),
        shown(&unknown)
    );

    // A setting read from the environment only is named, with its variable, in its table.
    let targets = env_targets();
    for setting in &env_only {
        let variable = targets
            .get(setting)
            .unwrap_or_else(|| panic!("{:?}: environment only, but no variable", setting));
        let line = format!("# Environment only: {variable}");
        assert!(
            tables
                .get(&setting.0)
                .is_some_and(|text| text.lines().any(|l| l == line)),
            "x402.example.toml, [{}]: no line {line:?}",
            setting.0
        );
    }
}

#[test]
fn every_example_setting_says_what_it_means_and_its_environment_variable() {
    let targets = env_targets();
    for Documented { setting, comment } in documented().0 {
        let environment: Vec<&String> = comment
            .iter()
            .filter(|l| l.starts_with("Environment") || l.contains("environment override"))
            .collect();
        let expected = match targets.get(&setting) {
            Some(variable) => format!("Environment: {variable}"),
            None => "(no environment override)".to_string(),
        };
        assert_eq!(
            environment,
            [&expected],
            "x402.example.toml, {:?}: its comment must say {expected:?} once",
            setting
        );
        assert!(
            comment.len() >= 2,
            "x402.example.toml, {setting:?}: say what it means above {expected:?}"
        );
    }
}

#[test]
fn the_example_configuration_is_the_defaults_and_parses_with_every_setting() {
    let loaded = Config::load(Some(Path::new(EXAMPLE_PATH))).unwrap();
    assert_eq!(
        format!("{loaded:#?}"),
        format!("{:#?}", Config::default()),
        "the live settings of x402.example.toml are the defaults"
    );

    let text = uncommented();
    let full: Config = toml::from_str(&text)
        .unwrap_or_else(|e| panic!("x402.example.toml, uncommented, does not parse: {e}"));
    assert_eq!(full.routes.len(), 1, "the example route is read");
    assert!(full.payment.rpc_url.is_some() && full.payment.asset.is_some());
    x402_verifier::server::janitor_schedule(&full.janitor).unwrap();
}

#[test]
fn the_example_names_exactly_the_environment_variables_the_verifier_reads() {
    // What `Config::apply_env` asks the environment for, through the public API...
    let asked = RefCell::new(BTreeSet::new());
    Config::default()
        .apply_env(|name| {
            asked.borrow_mut().insert(name.to_string());
            None
        })
        .unwrap();
    let asked = asked.into_inner();
    // ...which is what its source names, so the source's reading above is complete.
    let in_source: BTreeSet<String> = env_targets().into_values().collect();
    assert_eq!(asked, in_source, "src/config/env.rs, read by this test");
    assert!(asked.len() >= 30, "{asked:?}");

    // The binary's own (`X402_CONFIG`, the file's path).
    let mut read = asked;
    for chunk in MAIN_SOURCE.split("env = \"").skip(1) {
        read.insert(chunk[..chunk.find('"').unwrap()].to_string());
    }

    let named: BTreeSet<String> = EXAMPLE
        .match_indices("X402_")
        .map(|(at, _)| {
            let rest = &EXAMPLE[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            rest[..end].to_string()
        })
        .collect();
    let unread: Vec<_> = named.difference(&read).collect();
    let unnamed: Vec<_> = read.difference(&named).collect();
    assert!(
        unread.is_empty() && unnamed.is_empty(),
        "x402.example.toml names variables the verifier does not read: {unread:?}; \
         and does not name these it reads: {unnamed:?}"
    );
}

/// The rows of docs/reasons.md's code table: the code and what it means.
fn reason_rows() -> Vec<(String, String)> {
    let start = REASONS
        .find("\n## Every reason code")
        .expect("docs/reasons.md has a section \"## Every reason code\"");
    let section = &REASONS[start + 1..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let (code, meaning) = line
                .trim_matches('|')
                .split_once(" | ")
                .unwrap_or_else(|| panic!("docs/reasons.md: | code | meaning |: {line}"));
            let code = code.trim().trim_matches('`').to_string();
            (code, meaning.trim().to_string())
        })
        .collect()
}

#[test]
fn docs_reasons_lists_exactly_the_reason_codes() {
    let rows = reason_rows();
    let mut listed = BTreeSet::new();
    for (code, meaning) in &rows {
        assert!(
            listed.insert(code.as_str()),
            "docs/reasons.md: {code} twice"
        );
        assert!(
            !meaning.is_empty(),
            "docs/reasons.md, {code}: say what it means"
        );
    }
    let codes: BTreeSet<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    let missing: Vec<_> = codes.difference(&listed).collect();
    let unknown: Vec<_> = listed.difference(&codes).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "docs/reasons.md lacks {missing:?} and lists codes the verifier does not send: {unknown:?}"
    );
}
