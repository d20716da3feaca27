//! The `kommander-kv` binary's exit codes for what it cannot run.

use std::process::Command;

/// Runs the binary with `args` and returns its exit code and stderr.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kommander-kv"))
        .args(args)
        .env("KOMMANDER_LOG", "error")
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr)
}

#[test]
fn an_invalid_configuration_exits_2_naming_the_field() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().join("data");
    let node = format!("node_id = 1\ndata_dir = {:?}\n", data.display().to_string());
    let cases = [
        (
            "[kv]\nhttp_listen = \"127.0.0.1:0\"\nbody_bytes_max = 0\n",
            "kv.body_bytes_max",
        ),
        ("[kv]\nkey_bytes_max = 10\n", "kv.http_listen"),
        ("[kv]\nhttp_listen = \"127.0.0.1:0\"\nspeed = 1\n", "speed"),
        (
            "tick_interval_ms = 0\n[kv]\nhttp_listen = \"127.0.0.1:0\"\n",
            "tick_interval_ms",
        ),
    ];
    for (text, field) in cases {
        let path = dir.path().join("node.toml");
        std::fs::write(&path, format!("{node}{text}")).expect("write the configuration");
        let (code, stderr) = run(&["--config", path.to_str().expect("a UTF-8 path")]);
        assert_eq!(code, Some(2), "{text}: {stderr}");
        assert!(stderr.contains(field), "{text}: {stderr}");
        // Nothing was started: no data directory.
        assert!(!data.exists(), "{text}");
    }
    let (code, stderr) = run(&["--verbose"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("usage: kommander-kv --config FILE"),
        "{stderr}"
    );
}
