//! `docs/configuration.md` stays true to `NodeConfig`: its reference of the TOML file
//! (section 2) lists exactly the settings a node's configuration has, each default it writes
//! as a TOML value is the default, every `key = value` written anywhere on the page holds for
//! the defaults, every TOML example on it loads, and the counts of its Kommander table
//! (section 1) are those of the table's rows. A failure names the line of the page to fix;
//! rerun with `cargo test --profile ci --test main node::config_docs`.

use std::collections::{BTreeMap, BTreeSet};

use kommander_raft::NodeConfig;

/// The page, as this test binary was built with it.
const PAGE: &str = include_str!("../../docs/configuration.md");

/// The settings whose default section 2 gives in words: required in a file, derived from
/// `node_id`, unset. Every other default is written as a TOML value, and checked.
const DEFAULTS_IN_WORDS: [&str; 4] = ["node_id", "node_name", "data_dir", "transport.auth_secret"];

/// The options of Kommander's `RaftConfiguration` (`kommander-behaviour.md` §1.5).
const KOMMANDER_OPTIONS: usize = 100;

/// The issues a planned option may name (issue 17's areas).
const PLANNED_ISSUES: [u32; 5] = [12, 13, 14, 15, 17];

/// The lines of the page outside fenced code blocks.
fn prose_lines() -> impl Iterator<Item = &'static str> {
    let mut fenced = false;
    PAGE.lines().filter(move |line| {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            return false;
        }
        !fenced
    })
}

/// The cells of every table row of the page (header rows included, separator rows not).
fn table_rows() -> Vec<Vec<&'static str>> {
    prose_lines()
        .filter(|line| line.starts_with('|') && !line.starts_with("|---"))
        .map(|line| line.trim_matches('|').split('|').map(str::trim).collect())
        .collect()
}

/// The code spans of a line: `a` in "x `a` y".
fn code_spans(line: &str) -> impl Iterator<Item = &str> {
    line.split('`').skip(1).step_by(2)
}

/// The cell's text when the cell is one code span and nothing else.
fn only_code_span(cell: &str) -> Option<&str> {
    let inner = cell.strip_prefix('`')?.strip_suffix('`')?;
    (!inner.contains('`')).then_some(inner)
}

/// Whether `text` is written as a key of the TOML file: `name` or `table.name`, lower case.
fn is_key(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() <= 2
        && parts.iter().all(|part| {
            part.starts_with(|c: char| c.is_ascii_lowercase())
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

/// The settings of `config` with their values, keyed as the page writes them (a field of a
/// nested table is `table.field`); an unset `Option` field is absent.
fn settings_of(config: &NodeConfig) -> BTreeMap<String, toml::Value> {
    let text = toml::to_string(config).expect("a NodeConfig serializes to TOML");
    let table: toml::Table = text.parse().expect("a serialized NodeConfig parses");
    let mut settings = BTreeMap::new();
    for (key, value) in table {
        match value {
            // `peers` is the user's map (node id → endpoint), not a table of settings.
            toml::Value::Table(fields) if key != "peers" => {
                for (field, value) in fields {
                    settings.insert(format!("{key}.{field}"), value);
                }
            }
            value => {
                settings.insert(key, value);
            }
        }
    }
    settings
}

/// Every setting of the TOML file: those of the default configuration and those unset in it.
fn every_key() -> BTreeSet<String> {
    let mut config = NodeConfig::default();
    // The `Option` fields, set so that they serialize too.
    config.transport.auth_secret = Some("a secret of 16 bytes".to_owned());
    settings_of(&config).into_keys().collect()
}

/// Checks the page's claim that the default of `key` is the TOML value `value`: a file of
/// that line (and of the default configuration's required fields) loads, validates and is the
/// default configuration.
fn check_default(key: &str, value: &str, defaults: &BTreeMap<String, toml::Value>) {
    let line = format!("{key} = {value}");
    let required: String = ["node_id", "data_dir"]
        .into_iter()
        .filter(|&required| required != key)
        .map(|required| format!("{required} = {}\n", defaults[required]))
        .collect();
    let actual = defaults
        .get(key)
        .map_or_else(|| "unset".to_owned(), ToString::to_string);
    match NodeConfig::from_toml(&format!("{required}{line}")) {
        Ok(config) => assert!(
            config == NodeConfig::default(),
            "docs/configuration.md says `{line}`, but the default of `{key}` is {actual}"
        ),
        Err(error) => {
            panic!(
                "docs/configuration.md says `{line}`, which a node's configuration refuses: {error}"
            )
        }
    }
}

#[test]
fn the_reference_of_the_toml_file_lists_every_setting_with_its_default() {
    let defaults = settings_of(&NodeConfig::default());
    let mut documented = BTreeSet::new();
    for row in table_rows() {
        let [key_cell, default_cell, ..] = row[..] else {
            continue;
        };
        let Some(key) = only_code_span(key_cell).filter(|key| is_key(key)) else {
            continue;
        };
        assert!(
            documented.insert(key.to_owned()),
            "docs/configuration.md lists `{key}` twice"
        );
        if default_cell.starts_with('`') {
            let value = only_code_span(default_cell).unwrap_or_else(|| {
                panic!(
                    "docs/configuration.md: the default of `{key}` is one TOML value in code \
                     font, or words; not `{default_cell}`"
                )
            });
            check_default(key, value, &defaults);
        } else {
            assert!(
                DEFAULTS_IN_WORDS.contains(&key),
                "docs/configuration.md: the default of `{key}` must be written as a TOML value \
                 in code font (it is `{default_cell}`)"
            );
            if default_cell == "unset" {
                assert!(
                    !defaults.contains_key(key),
                    "docs/configuration.md says `{key}` is unset by default, but it is {:?}",
                    defaults.get(key)
                );
            }
        }
    }
    let every_key = every_key();
    let missing: Vec<&String> = every_key.difference(&documented).collect();
    let unknown: Vec<&String> = documented.difference(&every_key).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "docs/configuration.md section 2 must list every setting of NodeConfig: missing \
         {missing:?}; listed but not settings {unknown:?}"
    );
}

#[test]
fn every_default_written_on_the_page_is_the_default() {
    let defaults = settings_of(&NodeConfig::default());
    let claims: Vec<(&str, &str)> = prose_lines()
        .flat_map(code_spans)
        .filter_map(|span| span.split_once(" = "))
        .filter(|(key, _)| is_key(key))
        .collect();
    assert!(
        !claims.is_empty(),
        "docs/configuration.md writes our defaults as `key = value`"
    );
    for (key, value) in claims {
        check_default(key, value, &defaults);
    }
}

#[test]
fn every_toml_example_on_the_page_loads() {
    let mut examples = Vec::new();
    let mut example: Option<String> = None;
    for line in PAGE.lines() {
        match (&mut example, line.trim()) {
            (None, "```toml") => example = Some(String::new()),
            (Some(_), "```") => examples.extend(example.take()),
            (Some(text), _) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(
        !examples.is_empty(),
        "docs/configuration.md has a TOML example"
    );
    for example in examples {
        if let Err(error) = NodeConfig::from_toml(&example) {
            panic!("a TOML example of docs/configuration.md does not load: {error}\n{example}");
        }
    }
}

#[test]
fn the_counts_of_the_kommander_table_are_those_of_its_rows() {
    let mut options = BTreeSet::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for row in table_rows() {
        let [option_cell, _, verdict] = row[..] else {
            continue;
        };
        let Some(option) = option_cell
            .strip_prefix('`')
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, _)| name)
            .filter(|name| {
                name.starts_with(|c: char| c.is_ascii_uppercase())
                    && name.chars().all(|c| c.is_ascii_alphanumeric())
            })
        else {
            continue;
        };
        assert!(
            options.insert(option),
            "docs/configuration.md lists `{option}` twice"
        );
        let kind = ["same", "analogue", "not applicable"]
            .into_iter()
            .find(|kind| verdict.starts_with(&format!("**{kind}**")))
            .or_else(|| {
                let issue = verdict.strip_prefix("**planned (")?.split_once(")**")?.0;
                let issue: u32 = issue.parse().ok()?;
                PLANNED_ISSUES.contains(&issue).then_some("planned")
            })
            .unwrap_or_else(|| {
                panic!(
                    "docs/configuration.md, `{option}`: the verdict starts with **same**, \
                     **analogue**, **not applicable** or **planned (N)** with N one of \
                     {PLANNED_ISSUES:?}; not `{verdict}`"
                )
            });
        *counts.entry(kind).or_default() += 1;
    }
    assert_eq!(
        options.len(),
        KOMMANDER_OPTIONS,
        "docs/configuration.md section 1 has one row per option of RaftConfiguration"
    );
    let count = |kind| counts.get(kind).copied().unwrap_or(0);
    let line = format!(
        "Counts: **same** {}, **analogue** {}, **not applicable** {}, **planned** {} (of {}).",
        count("same"),
        count("analogue"),
        count("not applicable"),
        count("planned"),
        options.len()
    );
    assert!(
        PAGE.contains(&line),
        "docs/configuration.md must say: {line}"
    );
}
