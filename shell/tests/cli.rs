//! Black-box tests of the `passim` CLI: the built binary against the built `passimd` on a
//! private bus, checking output, exit codes and files as COMPAT.md states them.

mod common;

use std::path::Path;
use std::process::Output;

use common::{InProcess, Passimd, TestBus, TestRoot, passim, sha256_hex, stderr, stdout};
use passim_core::Peer;

/// Exit 1 with exactly `message` as the one line on stderr, nothing on stdout.
fn assert_fails_with(out: &Output, message: &str) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(stderr(out), format!("{message}\n"));
    assert_eq!(stdout(out), "");
}

/// Exit 1 with one line on stderr that starts with `prefix`, and no panic.
fn assert_fails_one_line(out: &Output, prefix: &str) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(
        err.starts_with(prefix),
        "{err:?} does not start with {prefix:?}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

fn assert_ok(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stderr(out), "", "{out:?}");
    stdout(out)
}

fn header(name: &str, uri: &str) -> String {
    format!("Name:               {name}\nStatus:             Running\nURI:                {uri}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_end_to_end() {
    let bus = TestBus::start();
    let root = TestRoot::new("");
    let _daemon = Passimd::start(&bus, &root, &[]).await;
    let proxy = bus.proxy().await;
    let name = proxy.name().await.unwrap();
    let uri = format!("https://localhost:{}/", root.port);
    let work = root.scratch();
    let run = |args: &'static [&'static str]| passim(&bus.address, &work, args);

    // Nothing published: status, its alias and no command at all say the same.
    let empty = assert_ok(&run(&["status"]).await);
    assert_eq!(empty, header(&name, &uri));
    assert_eq!(assert_ok(&run(&["dump"]).await), empty);
    assert_eq!(assert_ok(&run(&[]).await), empty);

    std::fs::write(work.join("hello.txt"), b"hello world\n").unwrap();
    let hash = sha256_hex(b"hello world\n");
    let out = assert_ok(&run(&["publish", "hello.txt"]).await);
    assert_eq!(
        out,
        format!("Published: {hash} hello.txt (max-age: 86400, share-limit: 5)\n")
    );
    assert_fails_with(
        &run(&["publish", "hello.txt"]).await,
        &format!("{hash} already exists"),
    );

    // The third argument is the share-limit (the C version took it for the count).
    std::fs::write(work.join("other.bin"), b"other").unwrap();
    let other = sha256_hex(b"other");
    assert_ok(&run(&["publish", "other.bin", "3600", "9"]).await);
    std::fs::write(work.join("later.bin"), b"later").unwrap();
    let later = sha256_hex(b"later");
    assert_ok(&run(&["publish", "later.bin", "--next-reboot"]).await);
    let items = proxy.get_items().await.unwrap();
    let find = |h: &str| {
        items
            .iter()
            .find(|i| <&str>::try_from(&i["hash"]).unwrap() == h)
            .unwrap_or_else(|| panic!("{h} not held"))
    };
    assert_eq!(u32::try_from(&find(&other)["share-limit"]).unwrap(), 9);
    assert_eq!(u32::try_from(&find(&other)["max-age"]).unwrap(), 3600);
    assert!(!find(&other).contains_key("share-count"));
    assert_eq!(u64::try_from(&find(&later)["flags"]).unwrap(), 3);

    let status = assert_ok(&run(&["status"]).await);
    assert!(status.starts_with(&header(&name, &uri)), "{status}");
    let hello_tree = format!(
        "\n{hash}\n\
         ├ Filename:         hello.txt\n\
         ├ Command Line:     passim\n\
         ├ Age:              0/24h\n\
         ├ Share Limit:      0/5\n\
         └ Size:             12 bytes\n"
    );
    assert!(status.contains(&hello_tree), "{status}");
    assert!(
        status.contains("├ Flags:            Disabled, Next Reboot\n"),
        "{status}"
    );
    assert!(status.contains("├ Share Limit:      0/9\n"), "{status}");
    assert!(status.contains("├ Age:              0/1h\n"), "{status}");

    let json = assert_ok(&run(&["status", "--json"]).await);
    assert_eq!(assert_ok(&run(&["--json"]).await), json);
    assert_eq!(json.lines().count(), 1, "one line for scripts: {json}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(v["name"], name.as_str(), "{json}");
    assert_eq!(
        (v["status"].as_u64(), v["status-text"].as_str()),
        (Some(3), Some("Running"))
    );
    assert!(v["daemon-version"].is_string());
    let items = v["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "{json}");
    let hello = items
        .iter()
        .find(|i| i["hash"] == hash.as_str())
        .expect("the published item");
    assert_eq!(hello["filename"], "hello.txt");
    assert_eq!(hello["cmdline"], "passim");
    assert_eq!(hello["max-age"], 86400);
    assert_eq!(hello["share-limit"], 5);
    assert_eq!(hello["share-count"], 0);
    assert_eq!(hello["size"], 12);

    let out = assert_ok(&passim(&bus.address, &work, &["unpublish", &hash]).await);
    assert_eq!(out, format!("Unpublished: {hash}\n"));
    assert_fails_with(
        &passim(&bus.address, &work, &["unpublish", &hash]).await,
        &format!("{hash} not found"),
    );
    assert_fails_one_line(&run(&["unpublish", "zzz"]).await, "invalid hash zzz");

    // The daemon does not answer from its own store for `download`: with no peer, 404.
    let dl = root.path().join("downloads");
    std::fs::create_dir(&dl).unwrap();
    assert_fails_with(
        &passim(&bus.address, &dl, &["download", "other.bin", &other]).await,
        &format!(
            "Failed to download other.bin from localhost:{}: Not Found",
            root.port
        ),
    );
    assert_eq!(
        std::fs::read_dir(&dl).unwrap().count(),
        0,
        "download left a file"
    );
    assert_fails_one_line(
        &passim(&bus.address, &dl, &["download", "../x", &other]).await,
        "invalid basename ../x",
    );

    let version = assert_ok(&run(&["--version"]).await);
    let v = env!("CARGO_PKG_VERSION");
    assert_eq!(
        version,
        format!("client version: {v}\ndaemon version: {v}\n")
    );

    assert_fails_with(&run(&["frobnicate"]).await, "Command not found");
    assert_fails_with(&run(&["frobnicate", "--json"]).await, "Command not found");
    assert_fails_one_line(
        &run(&["publish", "hello.txt", "soon"]).await,
        "error: invalid value",
    );
    assert_fails_one_line(&run(&["publish"]).await, "error: the following required");
    assert_fails_one_line(&run(&["--bogus"]).await, "error: unexpected argument");
    assert_fails_one_line(
        &run(&["publish", "missing.txt"]).await,
        "cannot open missing.txt",
    );
    assert_fails_one_line(&run(&["publish", "."]).await, ". is not a regular file");

    // Help is not an error.
    let help = assert_ok(&run(&["--help"]).await);
    for command in ["status", "publish", "unpublish", "download"] {
        assert!(help.contains(command), "{help}");
    }
    assert!(
        !help.contains("generate-man"),
        "hidden commands show in help: {help}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_follows_the_redirect_to_a_peer_and_verifies() {
    // Peer A holds the file; it is on its own bus so the local daemon B can own the name.
    let peer_bus = TestBus::start();
    let peer_root = TestRoot::new("CarbonCost=100000");
    let _peer = Passimd::start(&peer_bus, &peer_root, &[]).await;
    let scratch = peer_root.scratch();
    std::fs::write(scratch.join("hello.txt"), b"hello world\n").unwrap();
    let hash = sha256_hex(b"hello world\n");
    assert_ok(&passim(&peer_bus.address, &scratch, &["publish", "hello.txt"]).await);

    // The local daemon B finds A for every hash, as mDNS would.
    let bus = TestBus::start();
    let root = TestRoot::new("");
    let peer = Peer {
        name: "Passim-PEER".to_owned(),
        addr: format!("127.0.0.1:{}", peer_root.port).parse().unwrap(),
    };
    let local = InProcess::start(&bus, &root, vec![peer]).await;

    let dl = root.scratch();
    let out = assert_ok(&passim(&bus.address, &dl, &["download", "hello.txt", &hash]).await);
    assert_eq!(out, "Saved hello.txt (12 bytes of text/plain)\n");
    assert_eq!(
        std::fs::read(dl.join("hello.txt")).unwrap(),
        b"hello world\n"
    );
    assert_eq!(
        only_file(&dl),
        "hello.txt",
        "a temporary file was left behind"
    );

    // A hash the peer does not hold: the peer's 404, named by its address; nothing written.
    let missing = sha256_hex(b"nobody has this");
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_fails_with(
        &passim(&bus.address, &empty, &["download", "gone.bin", &missing]).await,
        &format!(
            "Failed to download gone.bin from 127.0.0.1:{}: Not Found",
            peer_root.port
        ),
    );
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);

    // The peer counts what it served.
    let status = assert_ok(&passim(&peer_bus.address, &scratch, &["status"]).await);
    let lines: Vec<&str> = status.lines().collect();
    assert_eq!(lines[2], "Network Saving:     12 bytes", "{status}");
    assert_eq!(lines[3], "Carbon Saving:      0.00 kg CO₂e", "{status}");
    assert!(status.contains("├ Share Limit:      1/5\n"), "{status}");
    let without_peer = passim(&bus.address, &dl, &["status"]).await;
    assert!(!stdout(&without_peer).contains("Network Saving"));

    // A large file on a terminal gets a progress bar (on stderr); `script` provides the
    // terminal and records what was drawn.
    let big: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(scratch.join("big.bin"), &big).unwrap();
    assert_ok(&passim(&peer_bus.address, &scratch, &["publish", "big.bin"]).await);
    let tty_dir = root.path().join("tty");
    std::fs::create_dir(&tty_dir).unwrap();
    let command = format!(
        "{} download big.bin {}",
        env!("CARGO_BIN_EXE_passim"),
        sha256_hex(&big)
    );
    let mut script = std::process::Command::new("script");
    script
        .args(["-qec", &command, "/dev/null"])
        .current_dir(&tty_dir)
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .stdin(std::process::Stdio::null());
    let out = tokio::task::spawn_blocking(move || script.output().unwrap())
        .await
        .unwrap();
    let screen = stdout(&out);
    assert!(out.status.success(), "{out:?}");
    assert!(screen.contains("big.bin ["), "no progress bar: {screen:?}");
    assert!(screen.contains("100% 3.1 MB of 3.1 MB"), "{screen:?}");
    assert!(
        screen.contains("Saved big.bin (3.1 MB of application/octet-stream)"),
        "{screen:?}"
    );
    assert_eq!(std::fs::read(tty_dir.join("big.bin")).unwrap(), big);

    local.stop().await;
}

fn only_file(dir: &Path) -> String {
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    names.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_daemon_or_bus_is_one_line_and_exit_1() {
    let bus = TestBus::start();
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("x"), b"x").unwrap();
    for args in [
        &["status"][..],
        &["publish", "x"],
        &["unpublish", &"ab".repeat(32)],
        &["download", "x", &"ab".repeat(32)],
    ] {
        let out = passim(&bus.address, cwd.path(), args).await;
        assert_fails_one_line(&out, "cannot reach passimd: ");
    }
    let out = passim(&bus.address, cwd.path(), &["--version"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        format!("client version: {}\n", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{out:?}");

    let nowhere = format!("unix:path={}", cwd.path().join("no.sock").display());
    let out = passim(&nowhere, cwd.path(), &["status"]).await;
    assert_fails_one_line(&out, "cannot connect to the system bus: ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn man_pages_and_completions_come_from_the_clap_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let out = passim(
        "unix:path=/nonexistent",
        dir.path(),
        &["generate-man", "man"],
    )
    .await;
    assert_ok(&out);
    let page = std::fs::read_to_string(dir.path().join("man/passim.1")).unwrap();
    assert!(page.contains(".TH passim 1"), "{page}");
    assert!(page.contains("publish"), "{page}");
    assert!(dir.path().join("man/passim-publish.1").exists());
    assert!(!dir.path().join("man/passim-generate-man.1").exists());

    for (shell, needle) in [
        ("bash", "_passim()"),
        ("zsh", "#compdef passim"),
        ("fish", "complete -c passim"),
    ] {
        let out = passim(
            "unix:path=/nonexistent",
            dir.path(),
            &["generate-completions", shell],
        )
        .await;
        let script = assert_ok(&out);
        assert!(script.contains(needle), "{shell}: {script}");
        assert!(script.contains("unpublish"), "{shell}");
    }

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_passimd"))
        .args(["--generate-man"])
        .arg(dir.path().join("man"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let page = std::fs::read_to_string(dir.path().join("man/passimd.8")).unwrap();
    assert!(page.contains(".TH passimd 8"), "{page}");
    assert!(page.contains("insecure"), "{page}");
}
