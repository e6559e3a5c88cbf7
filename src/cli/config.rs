//! Where `serve`'s options come from: the command line, the environment and a TOML file,
//! in that order of precedence, then the defaults.
//!
//! Every option of `serve` (and of `config print`, which takes the same ones) is also read
//! from the environment variable `KEYLEDGER_` followed by its long name in upper case with
//! `_` for `-` (`--data-dir` is `KEYLEDGER_DATA_DIR`), and from the file given by
//! `--config FILE` (or `KEYLEDGER_CONFIG`) under its long name with `_` for `-`
//! (`data_dir = "/var/lib/keyledger"`). Nothing here lists the options: both are derived
//! from clap's definition of `serve`, so a new flag gets its variable and its key by being
//! declared. A flag whose value is a secret declares `hide_env_values = true`, and
//! `config print` shows it redacted.
//!
//! The file's values are handed to clap as if they had been typed after the flags that
//! were (for options neither typed nor in the environment), so they are parsed and
//! checked exactly as flags are. A key that names no option is an error naming it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches};

/// The prefix of every option's environment variable.
pub const ENV_PREFIX: &str = "KEYLEDGER_";

/// The option naming the file, which cannot itself come from the file.
const CONFIG_ID: &str = "config";

/// Where an option's effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Typed on the command line.
    Flag,
    /// An environment variable.
    Environment,
    /// The `--config` file.
    File,
    /// The built-in default.
    Default,
}

/// One option's effective value, as `config print` shows it.
#[derive(Debug, Clone)]
pub struct Setting {
    /// The key in the file (the long name with `_` for `-`).
    pub key: String,
    /// The environment variable.
    pub env: String,
    /// The values (several for a repeatable option); empty when unset.
    pub values: Vec<String>,
    /// Where they came from.
    pub source: Source,
    /// A flag (true or false) rather than an option taking a value.
    pub is_flag: bool,
    /// A repeatable option, written as a list in the file.
    pub is_list: bool,
    /// A secret, never printed.
    pub is_secret: bool,
}

/// The effective configuration of `serve`: every option with its source.
#[derive(Debug, Clone, Default)]
pub struct Effective {
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// The options, in the order `serve --help` lists them.
    pub settings: Vec<Setting>,
}

/// The key of an option in the file: its long name with `_` for `-`.
fn key_of(arg: &clap::Arg) -> Option<String> {
    arg.get_long().map(|long| long.replace('-', "_"))
}

/// Gives every option of `serve` and `config print` its `KEYLEDGER_…` variable.
pub fn with_environment(command: clap::Command) -> clap::Command {
    let add = |sub: clap::Command| {
        sub.mut_args(|arg| match key_of(&arg) {
            Some(key) if arg.get_env().is_none() && !matches!(key.as_str(), "help" | "version") => {
                arg.env(format!("{ENV_PREFIX}{}", key.to_ascii_uppercase()))
            }
            _ => arg,
        })
    };
    let mut command = command;
    if command.find_subcommand("serve").is_some() {
        command = command.mut_subcommand("serve", add);
    }
    if command.find_subcommand("config").and_then(|config| config.find_subcommand("print")).is_some() {
        command = command.mut_subcommand("config", |config| config.mut_subcommand("print", add));
    }
    command
}

/// The matches of the subcommand that takes `serve`'s options, if that is the one given,
/// and its definition.
fn serve_like<'a>(command: &'a clap::Command, matches: &'a ArgMatches) -> Option<(&'a clap::Command, &'a ArgMatches)> {
    match matches.subcommand()? {
        ("serve", serve) => Some((command.find_subcommand("serve")?, serve)),
        ("config", config) => {
            let ("print", print) = config.subcommand()? else { return None };
            Some((command.find_subcommand("config")?.find_subcommand("print")?, print))
        }
        _ => None,
    }
}

/// Parses the command line with the environment and the `--config` file layered under it.
/// Returns the matches and, for `serve` and `config print`, the effective configuration.
/// Usage errors (clap's) end the process as clap does; a file that cannot be read or
/// names an unknown key is an error.
pub fn parse(command: clap::Command, args: Vec<OsString>) -> Result<(ArgMatches, Option<Effective>), String> {
    let command = with_environment(command);
    let first = command.clone().get_matches_from(args.iter());
    let Some((definition, matches)) = serve_like(&command, &first) else {
        return Ok((first, None));
    };
    let file = matches.get_one::<PathBuf>(CONFIG_ID).cloned();
    let mut from_file = Vec::new();
    let mut extra = Vec::new();
    if let Some(path) = &file {
        let table = read_table(path)?;
        for (key, value) in table {
            let arg = definition
                .get_arguments()
                .find(|arg| key_of(arg).as_deref() == Some(key.as_str()) && arg.get_id() != CONFIG_ID)
                .ok_or_else(|| unknown_key(path, &key, definition))?;
            let typed_or_env = matches!(
                matches.value_source(arg.get_id().as_str()),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            );
            if typed_or_env {
                continue;
            }
            extra.extend(as_flags(path, &key, arg, value)?);
            from_file.push(arg.get_id().to_string());
        }
    }
    let matches = if extra.is_empty() {
        first
    } else {
        let mut layered = args;
        layered.extend(extra);
        command.clone().get_matches_from(layered)
    };
    let (definition, serve) = serve_like(&command, &matches).ok_or("the subcommand changed while layering the file")?;
    let effective = effective(definition, serve, &from_file, file);
    Ok((matches, Some(effective)))
}

fn read_table(path: &Path) -> Result<toml::Table, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("--config {}: {error}", path.display()))?;
    text.parse::<toml::Table>().map_err(|error| format!("--config {}: {error}", path.display()))
}

fn unknown_key(path: &Path, key: &str, definition: &clap::Command) -> String {
    let known: Vec<String> =
        definition.get_arguments().filter(|arg| arg.get_id() != CONFIG_ID).filter_map(key_of).collect();
    format!("--config {}: unknown key `{key}`; the keys are: {}", path.display(), known.join(", "))
}

/// The command-line words that give `arg` the file's `value`.
fn as_flags(path: &Path, key: &str, arg: &clap::Arg, value: toml::Value) -> Result<Vec<OsString>, String> {
    let long = arg.get_long().unwrap_or(key);
    let wrong = |what: &str| format!("--config {}: `{key}` {what}", path.display());
    let is_flag = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
    let scalar = |value: toml::Value| -> Result<String, String> {
        match value {
            toml::Value::String(text) => Ok(text),
            toml::Value::Integer(number) => Ok(number.to_string()),
            toml::Value::Float(number) => Ok(number.to_string()),
            toml::Value::Boolean(flag) => Ok(flag.to_string()),
            _ => Err(wrong("must be a string, a number or a boolean")),
        }
    };
    if is_flag {
        let on = match value {
            toml::Value::Boolean(on) => on,
            toml::Value::String(text) if text == "true" || text == "false" => text == "true",
            _ => return Err(wrong("must be true or false")),
        };
        return Ok(if on { vec![format!("--{long}").into()] } else { Vec::new() });
    }
    let values = match value {
        toml::Value::Array(items) if matches!(arg.get_action(), ArgAction::Append) => {
            items.into_iter().map(scalar).collect::<Result<Vec<_>, _>>()?
        }
        toml::Value::Array(_) => return Err(wrong("takes one value, not a list")),
        other => vec![scalar(other)?],
    };
    Ok(values.into_iter().map(|value| format!("--{long}={value}").into()).collect())
}

fn effective(
    definition: &clap::Command,
    matches: &ArgMatches,
    from_file: &[String],
    file: Option<PathBuf>,
) -> Effective {
    let settings = definition
        .get_arguments()
        .filter_map(|arg| {
            let key = key_of(arg)?;
            if matches!(key.as_str(), "help" | "version" | CONFIG_ID) {
                return None;
            }
            let id = arg.get_id().as_str();
            let values: Vec<String> = matches
                .get_raw(id)
                .map(|raw| raw.map(|value| value.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            let source = if from_file.iter().any(|file_id| file_id == id) {
                Source::File
            } else {
                match matches.value_source(id) {
                    Some(ValueSource::CommandLine) => Source::Flag,
                    Some(ValueSource::EnvVariable) => Source::Environment,
                    _ => Source::Default,
                }
            };
            Some(Setting {
                env: format!("{ENV_PREFIX}{}", key.to_ascii_uppercase()),
                key,
                values,
                source,
                is_flag: matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse),
                is_list: matches!(arg.get_action(), ArgAction::Append),
                is_secret: arg.is_hide_env_values_set(),
            })
        })
        .collect();
    Effective { file, settings }
}

impl Effective {
    /// The configuration as a TOML file that `--config` reads back, each line saying where
    /// its value came from; secrets redacted, unset options commented out.
    pub fn to_toml(&self) -> String {
        let mut text = String::from(
            "# keyledger serve: the effective configuration.\n\
             # Precedence: flag > environment (KEYLEDGER_…) > file (--config) > default.\n",
        );
        if let Some(file) = &self.file {
            text.push_str(&format!("# file: {}\n", file.display()));
        }
        let quote = |value: &str| serde_json::to_string(value).unwrap_or_else(|_| "\"?\"".into());
        for setting in &self.settings {
            let source = match setting.source {
                Source::Flag => format!("flag --{}", setting.key.replace('_', "-")),
                Source::Environment => format!("environment {}", setting.env),
                Source::File => "file".to_owned(),
                Source::Default => "default".to_owned(),
            };
            let value = if setting.values.is_empty() {
                text.push_str(&format!("# {} is not set ({source})\n", setting.key));
                continue;
            } else if setting.is_secret {
                quote("<redacted>")
            } else if setting.is_flag {
                setting.values.last().map_or("false", |value| if value == "true" { "true" } else { "false" }).to_owned()
            } else if setting.is_list {
                format!("[{}]", setting.values.iter().map(|value| quote(value)).collect::<Vec<_>>().join(", "))
            } else {
                let value = &setting.values[0];
                if value.parse::<i64>().is_ok() { value.clone() } else { quote(value) }
            };
            text.push_str(&format!("{} = {value}  # {source}\n", setting.key));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_with_a_secret() -> clap::Command {
        clap::Command::new("keyledger").subcommand(
            clap::Command::new("serve")
                .arg(clap::Arg::new(CONFIG_ID).long("config").value_parser(clap::value_parser!(PathBuf)))
                .arg(clap::Arg::new("database_url").long("database-url").hide_env_values(true))
                .arg(clap::Arg::new("listen").long("listen").default_value("127.0.0.1:8080")),
        )
    }

    #[test]
    fn config_print_redacts_a_secret_and_names_its_variable() {
        let args = ["keyledger", "serve", "--database-url", "postgres://keyledger:hunter2@db/keyledger"];
        let (_, effective) = parse(serve_with_a_secret(), args.iter().map(OsString::from).collect()).expect("parsed");
        let printed = effective.expect("serve has a configuration").to_toml();
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("database_url = \"<redacted>\"  # flag --database-url"), "{printed}");
        assert!(printed.contains("listen = \"127.0.0.1:8080\"  # default"), "{printed}");
    }

    #[test]
    fn every_option_gets_its_variable_from_its_long_name() {
        let command = with_environment(serve_with_a_secret());
        let serve = command.find_subcommand("serve").expect("serve");
        let database_url = serve.get_arguments().find(|arg| arg.get_id() == "database_url").expect("the option");
        assert_eq!(database_url.get_env(), Some(std::ffi::OsStr::new("KEYLEDGER_DATABASE_URL")));
    }
}
