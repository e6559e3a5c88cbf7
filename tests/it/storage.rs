//! Storage faults (issue #5, item 6): a full disk fails admin writes with 503 and nothing
//! partial, the process then stops with a clear status (fjall takes no writes after a
//! failed one), and a restart once space returns recovers every acknowledged write.
//!
//! Needs to mount a small tmpfs (root); skipped, saying so, where mounting is not allowed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::helpers::spawn_app_in;

/// A size-limited tmpfs, unmounted on drop.
struct SmallDisk {
    mount_point: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let mount_point = tempfile::tempdir().ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(mount_point.path())
            .output()
            .ok()?;
        mounted.status.success().then_some(SmallDisk { mount_point })
    }

    fn path(&self) -> &Path {
        self.mount_point.path()
    }

    /// Fills the disk, leaving about `leave` bytes free; returns the filler file.
    fn fill(&self, leave: u64) -> PathBuf {
        let filler = self.path().join("filler");
        let free = fs_free_bytes(self.path());
        let size = free.saturating_sub(leave);
        std::fs::write(&filler, vec![0u8; usize::try_from(size).unwrap()]).unwrap();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.mount_point.path()).status();
    }
}

fn fs_free_bytes(path: &Path) -> u64 {
    let output = Command::new("df").args(["--output=avail", "-B1"]).arg(path).output().unwrap();
    String::from_utf8_lossy(&output.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
}

#[test]
fn a_full_disk_fails_writes_with_503_stops_cleanly_and_a_restart_recovers_everything_acknowledged() {
    let Some(disk) = SmallDisk::mount("2m") else {
        eprintln!("SKIPPED storage fault test: cannot mount a tmpfs here (needs root)");
        return;
    };
    let data_dir = disk.path().join("data");
    let mut app = spawn_app_in(&data_dir);
    let (_, _, key) = app.api_user();
    let filler = disk.fill(48 * 1024);

    let mut acknowledged = Vec::new();
    let mut refusal = None;
    for n in 0..20_000 {
        let body = serde_json::to_vec(&json!({ "name": format!("filling {n} {}", "x".repeat(150)) })).unwrap();
        let authorization = format!("Bearer {}", app.admin_key);
        let headers = [("authorization", authorization.as_str()), ("content-type", "application/json")];
        match app.try_raw("POST", "/v1/users", &headers, Some(&body)) {
            Ok(reply) if reply.status == 201 => acknowledged.push(reply.json()["id"].as_str().unwrap().to_owned()),
            Ok(reply) => {
                refusal = Some(reply);
                break;
            }
            Err(error) => panic!("the server went away before answering a write: {error}"),
        }
    }
    let refusal = refusal.expect("the disk never filled up");
    refusal.expect_problem(503, "storage_unavailable");
    assert!(refusal.header("retry-after").is_some());
    let status = app.wait_for_exit(Duration::from_secs(10)).expect("keyledger keeps running on a failed disk");
    assert_eq!(status.code(), Some(74), "a clear exit status (EX_IOERR) after a failed write");

    // Space returns; a restart recovers every acknowledged write and takes writes again.
    std::fs::remove_file(filler).unwrap();
    let app = app.restart();
    let size = app.verified_audit_size();
    assert!(size > acknowledged.len() as u64);
    for id in &acknowledged {
        app.get(&format!("/v1/users/{id}")).expect(200);
    }
    assert_eq!(app.check_reason(&key, "api.attendees.read", Some("summit-nyc")), "granted");
    app.create_user("after the disk was freed");
}
