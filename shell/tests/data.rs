//! Tests of what a distribution installs from `shell/data/`: the sample configuration says
//! what the daemon really does, the bus policy lets a real `dbus-daemon` enforce "everyone
//! reads, only root changes", and the unit files name each other consistently.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{NOBODY, Passimd, TestBus, TestRoot, passim, passim_as, stderr};
use passim_core::config::Config;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(data(name)).unwrap()
}

#[test]
fn the_sample_config_documents_the_real_defaults() {
    let text = read("passim.conf");
    let (config, warnings) = Config::parse(&text);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config, Config::default());

    // Every documented default, uncommented, is what the daemon uses anyway.
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_uppercase()) => rest,
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let (mut config, warnings) = Config::parse(&uncommented);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.path.take().as_deref(), Some("/var/lib/passim/data"));
    assert_eq!(config, Config::default());

    for key in [
        "Port",
        "IPv6",
        "Path",
        "MaxItemSize",
        "CarbonCost",
        "Cooldown",
        "Listen",
        "MaxUploadRate",
        "MaxConnections",
        "LookupTimeout",
    ] {
        assert!(
            text.contains(&format!("\n#{key}=")),
            "{key} is not documented"
        );
    }
}

#[test]
fn the_unit_and_the_activation_file_agree() {
    let unit = read("passim.service");
    let activation = read("org.freedesktop.Passim.service");
    for line in [
        "Type=dbus",
        "BusName=org.freedesktop.Passim",
        "User=passim",
        "StateDirectory=passim",
        "LogsDirectory=passim",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "passim.service lacks {line}"
        );
    }
    for line in [
        "[D-BUS Service]",
        "Name=org.freedesktop.Passim",
        "SystemdService=passim.service",
        "User=passim",
    ] {
        assert!(
            activation.lines().any(|l| l == line),
            "activation file lacks {line}"
        );
    }
    assert!(
        read("passim.sysusers.conf")
            .lines()
            .any(|l| l.starts_with("u     passim "))
    );
    assert!(read("passim.tmpfiles.conf").contains("/var/lib/passim/data  0700 passim passim"));

    // Where systemd's own checker is installed, the unit passes it.
    let Ok(dir) = tempfile::tempdir() else { return };
    let unit_path = dir.path().join("passim.service");
    std::fs::write(
        &unit_path,
        unit.replace("/usr/libexec/passimd", env!("CARGO_BIN_EXE_passimd")),
    )
    .unwrap();
    if let Ok(out) = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit_path)
        .output()
    {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "",
            "systemd-analyze warned"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_policy_lets_everyone_read_and_only_root_change() {
    let bus = TestBus::start_system_like(&data("org.freedesktop.Passim.conf"));
    let root = TestRoot::new("");
    let _daemon = Passimd::start(&bus, &root, &[]).await;
    let scratch = root.scratch();
    std::fs::write(scratch.join("a.txt"), b"policy\n").unwrap();
    let hash = common::sha256_hex(b"policy\n");

    let out = passim_as(&bus.address, &scratch, &["publish", "a.txt"], Some(NOBODY)).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).starts_with("permission denied by the D-Bus policy: "),
        "{out:?}"
    );
    assert!(root.data_files().is_empty());

    let out = passim(&bus.address, &scratch, &["publish", "a.txt"]).await;
    assert!(out.status.success(), "{out:?}");

    // Reading: GetItems and the properties (status), introspection through the properties.
    let out = passim_as(&bus.address, &scratch, &["status"], Some(NOBODY)).await;
    assert!(out.status.success(), "{out:?}");
    assert!(common::stdout(&out).contains(&hash));
    let out = passim_as(&bus.address, &scratch, &["--version"], Some(NOBODY)).await;
    assert!(out.status.success(), "{out:?}");

    let out = passim_as(&bus.address, &scratch, &["unpublish", &hash], Some(NOBODY)).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).starts_with("permission denied by the D-Bus policy: "));
    let out = passim(&bus.address, &scratch, &["unpublish", &hash]).await;
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_policy_keeps_the_name_from_other_users() {
    let bus = TestBus::start_system_like(&data("org.freedesktop.Passim.conf"));
    let root = TestRoot::new("");
    // nobody must be able to write the daemon's state for it to get as far as the bus.
    let chown = Command::new("chown")
        .args(["-R", &format!("{NOBODY}:{NOBODY}")])
        .arg(root.path())
        .status()
        .unwrap();
    assert!(chown.success());
    let mut daemon = Passimd::spawn_as(&bus.address, &root, &[], Some(NOBODY));

    // It keeps serving HTTPS but cannot take the name: one warning says so.
    let conn = bus.connect().await;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
    common::poll_until("the refusal to be logged", || async {
        daemon.log().contains("D-Bus is not available")
    })
    .await;
    assert!(daemon.try_wait().is_none(), "{}", daemon.log());
    let owned = dbus
        .name_has_owner("org.freedesktop.Passim".try_into().unwrap())
        .await
        .unwrap();
    assert!(!owned);
    daemon.kill9();
}
