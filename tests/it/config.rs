//! Configuration from flags, `KEYLEDGER_*` variables and a `--config` TOML file (issue
//! #15): one precedence, flag > environment > file > default, shown by `config print`.

use std::path::Path;
use std::process::{Command, Output};

use crate::helpers::BINARY;

/// Runs keyledger with only the given `KEYLEDGER_*` variables set.
fn keyledger(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BINARY);
    for (name, _) in std::env::vars() {
        if name.starts_with("KEYLEDGER_") {
            command.env_remove(name);
        }
    }
    command.args(args).envs(env.iter().copied()).output().expect("run keyledger")
}

fn printed(output: &Output) -> String {
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).expect("UTF-8")
}

/// The line of `config print` for `key`.
fn line<'a>(printed: &'a str, key: &str) -> &'a str {
    printed
        .lines()
        .find(|line| line.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no `{key}` in:\n{printed}"))
}

fn write_file(dir: &Path, text: &str) -> String {
    let path = dir.join("keyledger.toml");
    std::fs::write(&path, text).expect("write the file");
    path.to_str().expect("UTF-8").to_owned()
}

#[test]
fn an_option_set_by_flag_environment_and_file_follows_the_documented_precedence() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file =
        write_file(dir.path(), "listen = \"127.0.0.3:3\"\nworkers = 3\ntrusted_proxy = [\"10.0.0.1\", \"10.0.0.2\"]\n");
    let env = [("KEYLEDGER_LISTEN", "127.0.0.2:2")];

    let all = printed(&keyledger(&["config", "print", "--config", &file, "--listen", "127.0.0.1:1"], &env));
    assert_eq!(line(&all, "listen"), "listen = \"127.0.0.1:1\"  # flag --listen");
    let env_and_file = printed(&keyledger(&["config", "print", "--config", &file], &env));
    assert_eq!(line(&env_and_file, "listen"), "listen = \"127.0.0.2:2\"  # environment KEYLEDGER_LISTEN");
    let file_only = printed(&keyledger(&["config", "print", "--config", &file], &[]));
    assert_eq!(line(&file_only, "listen"), "listen = \"127.0.0.3:3\"  # file");
    let nothing = printed(&keyledger(&["config", "print"], &[]));
    assert_eq!(line(&nothing, "listen"), "listen = \"127.0.0.1:8080\"  # default");

    assert_eq!(line(&file_only, "workers"), "workers = 3  # file");
    assert_eq!(line(&file_only, "trusted_proxy"), "trusted_proxy = [\"10.0.0.1\", \"10.0.0.2\"]  # file");
    // The file can come from the environment too.
    let file_by_env = printed(&keyledger(&["config", "print"], &[("KEYLEDGER_CONFIG", &file)]));
    assert_eq!(line(&file_by_env, "listen"), "listen = \"127.0.0.3:3\"  # file");
}

#[test]
fn what_config_print_shows_reads_back_as_the_same_configuration() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let first = printed(&keyledger(
        &["config", "print", "--workers", "4", "--trusted-proxy", "10.0.0.9", "--allow-plain-http"],
        &[("KEYLEDGER_SNAPSHOT_EVERY", "77")],
    ));
    let file = write_file(dir.path(), &first);
    let again = printed(&keyledger(&["config", "print", "--config", &file], &[]));
    let values = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .map(|line| line.split("  # ").next().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(values(&first), values(&again), "file:\n{first}\nread back:\n{again}");
    assert_eq!(line(&again, "allow_plain_http"), "allow_plain_http = true  # file");
}

#[test]
fn an_unknown_key_in_the_config_file_fails_start_up_naming_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = write_file(dir.path(), "listen = \"127.0.0.1:0\"\nlisten_adress = \"0.0.0.0:80\"\n");
    let data = dir.path().join("data");
    let output = keyledger(&["serve", "--config", &file, "--data-dir", data.to_str().expect("UTF-8")], &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown key `listen_adress`"), "{stderr}");
    assert!(!data.exists(), "nothing is created when the configuration is refused");

    let wrong_type = write_file(dir.path(), "workers = \"many\"\n");
    let output = keyledger(&["serve", "--config", &wrong_type, "--data-dir", data.to_str().expect("UTF-8")], &[]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("many"), "the bad value is named");
    assert!(!data.exists());
}

#[test]
fn config_print_never_shows_a_database_password_from_any_source() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = "postgres://keyledger:s3cret-pw@127.0.0.1:5432/keyledger";
    let file = write_file(dir.path(), &format!("database_url = \"{url}\"\n"));
    for (args, env) in [
        (vec!["config", "print", "--database-url", url], vec![]),
        (vec!["config", "print"], vec![("KEYLEDGER_DATABASE_URL", url)]),
        (vec!["config", "print", "--config", file.as_str()], vec![]),
    ] {
        let output = keyledger(&args, &env);
        let shown = printed(&output);
        assert!(!shown.contains("s3cret-pw"), "{args:?}:\n{shown}");
        assert_eq!(line(&shown, "database_url").split("  #").next(), Some("database_url = \"<redacted>\""), "{args:?}");
    }
}
