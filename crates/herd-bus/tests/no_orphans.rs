//! After a process that started nats-server exits, no nats-server is left running.
//!
//! This test has its own `main` (harness = false): it re-runs itself as a child in two modes —
//! `drop` (the fixture goes out of scope normally) and `exit` (`process::exit` skips every
//! destructor, as a panic=abort or a killed parent would; only PR_SET_PDEATHSIG saves us) — reads
//! the server PID the child prints, and checks by PID that the server is gone.

use std::process::Command;
use std::time::{Duration, Instant};

const MODE: &str = "HERD_NO_ORPHANS_CHILD";

fn main() {
    if let Ok(mode) = std::env::var(MODE) {
        let server = herd_bus::NatsServer::start().expect("start nats-server");
        println!(
            "{} {}",
            server.pid().expect("running"),
            server.dir().display()
        );
        if mode == "exit" {
            std::process::exit(0);
        }
        drop(server);
        return;
    }
    let mut failed = 0;
    for mode in ["drop", "exit"] {
        match check(mode) {
            Ok(()) => println!("test no_orphans_after_{mode} ... ok"),
            Err(e) => {
                failed += 1;
                println!("test no_orphans_after_{mode} ... FAILED: {e}");
            }
        }
    }
    println!(
        "\ntest result: {}. {} passed; {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" },
        2 - failed
    );
    if failed > 0 {
        std::process::exit(101);
    }
}

fn check(mode: &str) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .env(MODE, mode)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (pid, dir) = stdout
        .trim()
        .split_once(' ')
        .ok_or("no pid and dir printed")?;
    let pid: i32 = pid.parse().map_err(|e| format!("no pid printed: {e}"))?;
    // `exit` skipped the fixture's destructor: its temp dir is this test's to remove.
    let _ = std::fs::remove_dir_all(dir);
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        if Instant::now() > deadline {
            return Err(format!(
                "nats-server pid {pid} still running 5 s after its parent exited"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Running, and not a zombie waiting for a reaper (a container's PID 1 may never reap it).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            state != Some("Z") && state != Some("X")
        }
    }
}
